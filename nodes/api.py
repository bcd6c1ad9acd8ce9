from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.answers import RevisionCachedAnswers
from api.views import LookupUnfiltered
from catalog.models import Product, TestTool
from messaging.revisions import CATALOG, NODES, USERS
from nodes import services, ssh
from nodes.models import Node, NodeOperation, NodeProduct, NodeTool


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
    private_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=20_000,
        trim_whitespace=False,
        style={"base_template": "textarea.html"},
        help_text="Write-only SSH private key (OpenSSH or PEM, no passphrase); stored encrypted. Used before "
        "the password when both are set. Leave it out to keep the stored one; empty removes it.",
    )
    has_private_key = serializers.BooleanField(read_only=True)
    host_key_fingerprint = serializers.SerializerMethodField()
    offered_host_key_fingerprint = serializers.SerializerMethodField()
    facts = serializers.SerializerMethodField(
        help_text="What the last check found on the machine: os, kernel, arch, cpus, memory_kb, disk_free_kb, python..."
    )

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
            "private_key",
            "has_private_key",
            "managed",
            "install_root",
            "slots",
            "status",
            "status_reason",
            "last_heartbeat",
            "worker_version",
            "worker_protocol",
            "ssh_status",
            "ssh_message",
            "host_key_fingerprint",
            "offered_host_key_fingerprint",
            "checked_at",
            "facts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "status_reason",
            "last_heartbeat",
            "worker_version",
            "worker_protocol",
            "ssh_status",
            "ssh_message",
            "checked_at",
        ]

    def get_host_key_fingerprint(self, node: Node) -> str:
        return ssh.fingerprint(node.host_key)

    def get_offered_host_key_fingerprint(self, node: Node) -> str:
        return ssh.fingerprint(node.offered_host_key)

    def get_facts(self, node: Node) -> dict[str, str | int | None]:
        return node.facts

    def validate_private_key(self, value: str) -> str:
        if value:
            try:
                ssh.load_private_key(value)
            except ValueError as error:
                raise serializers.ValidationError(str(error)) from None
        return value

    def create(self, validated_data):
        return services.node_create(**validated_data)

    def update(self, instance, validated_data):
        return services.node_update(node=instance, **validated_data)


class NodeOperationSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = NodeOperation
        fields = [
            "id",
            "node",
            "node_name",
            "kind",
            "state",
            "message",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class MaintenanceSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="true: take no new cases (running ones finish); false: end it.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=400)


class ApplyInstallsSerializer(serializers.Serializer):
    reinstall = serializers.BooleanField(
        default=False, help_text="Copy and unpack installed products and tools again too, not only failed ones."
    )


class AcceptHostKeySerializer(serializers.Serializer):
    fingerprint = serializers.CharField(
        max_length=100,
        help_text="The offered key's fingerprint as the node shows it: what you checked is what gets pinned.",
    )


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


class NodeViewSet(RevisionCachedAnswers, LookupUnfiltered, viewsets.ModelViewSet):
    answer_topics = (NODES, CATALOG)
    lookup_value_regex = "[0-9]+"
    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    filterset_fields = ["status", "installs__product", "installs__tools__tool"]
    search_fields = ["name", "ip"]
    ordering_fields = ["name", "status", "last_heartbeat", "created_at"]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "force",
                bool,
                description="Delete the node now even though its machine could not be cleaned (it is gone).",
            )
        ],
        responses={202: NodeOperationSerializer, 204: None},
    )
    def destroy(self, request, pk=None):
        """Remove the node (refused with 409 while it runs cases). A managed node whose machine has TestHub's
        worker or files is removed in order: 202 with the operation that stops its worker, deletes the files
        and then the node. Otherwise 204."""
        force = request.query_params.get("force", "").lower() in ("1", "true")
        operation = services.node_delete(node=self.get_object(), user=request.user, force=force)
        if operation is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(NodeOperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)

    def _operation(self, kind: str) -> Response:
        node = self.get_object()
        operation = services.operation_request(node=node, kind=kind, user=self.request.user)
        return Response(NodeOperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: NodeOperationSerializer})
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Reach the machine over SSH and record its facts (OS, CPUs, memory, free disk, Python), on the control
        worker. Follow the operation at /api/node-operations/{id}/; the outcome is also on the node."""
        return self._operation(NodeOperation.Kind.CHECK)

    @extend_schema(request=None, responses={202: NodeOperationSerializer})
    @action(detail=True, methods=["post"], url_path="deploy-worker")
    def deploy_worker(self, request, pk=None):
        """Copy the worker to the machine, start it there (systemd or a supervised process), wait for its ping.

        A worker already running finishes its running cases before the new one takes over."""
        return self._operation(NodeOperation.Kind.DEPLOY)

    @extend_schema(request=ApplyInstallsSerializer, responses={202: NodeOperationSerializer})
    @action(detail=True, methods=["post"], url_path="apply-installs")
    def apply_installs(self, request, pk=None):
        """Carry out the node's installs on the machine again: pending and failed ones and removals, and with
        `reinstall` every install (after uploading a product's or tool's file again)."""
        incoming = ApplyInstallsSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        operation = services.installs_apply_request(
            node=self.get_object(), user=request.user, reinstall=incoming.validated_data["reinstall"]
        )
        return Response(NodeOperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=MaintenanceSerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def maintenance(self, request, pk=None):
        """Put the node in maintenance (no new cases; running ones finish) or bring it back."""
        incoming = MaintenanceSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        node = services.node_maintenance_set(node=self.get_object(), **incoming.validated_data)
        return Response(NodeSerializer(node).data)

    @extend_schema(request=AcceptHostKeySerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"], url_path="accept-host-key")
    def accept_host_key(self, request, pk=None):
        """Pin the host key the machine offered instead of the old one (after a reinstall, say)."""
        incoming = AcceptHostKeySerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        node = services.node_host_key_accept(node=self.get_object(), fingerprint=incoming.validated_data["fingerprint"])
        return Response(NodeSerializer(node).data)

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


class NodeOperationViewSet(
    RevisionCachedAnswers, LookupUnfiltered, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Checks, installs and worker deployments carried out on the machines, newest first."""

    answer_topics = (NODES, USERS)
    lookup_value_regex = "[0-9]+"
    queryset = NodeOperation.objects.select_related("node", "requested_by")
    serializer_class = NodeOperationSerializer
    filterset_fields = ["node", "kind", "state"]
    ordering_fields = ["created_at", "finished_at"]
