from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.models import Product, TestTool
from nodes import services
from nodes.models import Node, NodeProduct, NodeTool


class NodeSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=256,
        style={"input_type": "password"},
        help_text="Write-only; stored encrypted. Leave it out to keep the stored one.",
    )
    has_password = serializers.BooleanField(read_only=True)

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "ip",
            "ssh_port",
            "username",
            "password",
            "has_password",
            "install_root",
            "slots",
            "status",
            "status_reason",
            "last_heartbeat",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status_reason", "last_heartbeat"]

    def create(self, validated_data):
        return services.node_create(**validated_data)

    def update(self, instance, validated_data):
        return services.node_update(node=instance, **validated_data)


class ToolInstallSerializer(serializers.ModelSerializer):
    tool = serializers.PrimaryKeyRelatedField(queryset=TestTool.objects.all())
    tool_name = serializers.CharField(source="tool.__str__", read_only=True)
    install_path = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Inside the node's install root."
    )

    class Meta:
        model = NodeTool
        fields = ["tool", "tool_name", "install_path", "state", "state_message"]
        read_only_fields = ["state", "state_message"]


class ProductInstallSerializer(serializers.ModelSerializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    product_name = serializers.CharField(source="product.__str__", read_only=True)
    install_path = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Inside the node's install root."
    )
    tools = ToolInstallSerializer(many=True, required=False)

    class Meta:
        model = NodeProduct
        fields = ["product", "product_name", "install_path", "state", "state_message", "tools"]
        read_only_fields = ["state", "state_message"]


class NodeInstallsSerializer(serializers.Serializer):
    products = ProductInstallSerializer(many=True, max_length=500)


class NodeViewSet(viewsets.ModelViewSet):
    lookup_value_regex = "[0-9]+"
    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    filterset_fields = ["status", "installs__product", "installs__tools__tool"]
    search_fields = ["name", "ip"]
    ordering_fields = ["name", "status", "last_heartbeat", "created_at"]

    @extend_schema(methods=["GET"], responses=NodeInstallsSerializer)
    @extend_schema(methods=["PUT"], request=NodeInstallsSerializer, responses=NodeInstallsSerializer)
    @action(detail=True, methods=["get", "put"], pagination_class=None, filter_backends=[])
    def installs(self, request, pk=None):
        """What is installed on the node: products, and for each the tools installed for it."""
        node = self.get_object()
        if request.method == "PUT":
            incoming = NodeInstallsSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            services.node_installs_set(
                node=node,
                installs=[
                    services.ProductInstall(
                        product=item["product"],
                        install_path=item.get("install_path", ""),
                        tools=[services.ToolInstall(**tool) for tool in item.get("tools", [])],
                    )
                    for item in incoming.validated_data["products"]
                ],
            )
        installs = node.installs.select_related("product").prefetch_related(
            Prefetch("tools", queryset=NodeTool.objects.select_related("tool"))
        )
        return Response(NodeInstallsSerializer({"products": installs}).data)
