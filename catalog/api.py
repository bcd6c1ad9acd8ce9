from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from api.answers import RevisionCachedAnswers
from api.parsers import StrictMultiPartParser
from api.views import LookupUnfiltered
from catalog import services
from catalog.models import Product, ProductTestResult, TestTool
from catalog.validators import validate_package_file_name
from messaging.revisions import CATALOG

RESULT_HISTORY_LENGTH = 100


class TestToolSerializer(serializers.ModelSerializer):
    file_name = serializers.CharField(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = TestTool
        fields = [
            "id",
            "name",
            "version",
            "command_template",
            "allow_option_like_cases",
            "case_timeout",
            "file_name",
            "download_url",
            "created_at",
            "updated_at",
        ]

    def get_download_url(self, tool: TestTool) -> str | None:
        if not tool.file:
            return None
        return self.context["request"].build_absolute_uri(f"/api/tools/{tool.pk}/file/")


class ProductSerializer(serializers.ModelSerializer):
    tools = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    file_name = serializers.CharField(read_only=True)
    download_url = serializers.SerializerMethodField()
    latest_pass_rate = serializers.DecimalField(max_digits=5, decimal_places=2, read_only=True, allow_null=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "version",
            "tools",
            "file_name",
            "download_url",
            "latest_pass_rate",
            "created_at",
            "updated_at",
        ]

    def get_download_url(self, product: Product) -> str | None:
        if not product.file:
            return None
        return self.context["request"].build_absolute_uri(f"/api/products/{product.pk}/file/")


class PackageFileSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=False)

    def validate_file(self, file):
        try:
            validate_package_file_name(file.name)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None
        limit = settings.TESTHUB_MAX_UPLOAD_BYTES
        if file.size > limit:
            raise serializers.ValidationError(f"The file is {file.size} bytes; the limit is {limit} bytes.")
        return file


class ProductUploadSerializer(PackageFileSerializer):
    name = serializers.CharField(max_length=100)
    version = serializers.CharField(max_length=50)


class ToolLinkSerializer(serializers.Serializer):
    tool = serializers.PrimaryKeyRelatedField(queryset=TestTool.objects.all())


class ProductTestResultSerializer(serializers.ModelSerializer):
    # A plain string in the schema: results recorded without a report have an empty link, not a URI.
    report_url = serializers.CharField(required=False, allow_blank=True, max_length=500, validators=[URLValidator()])

    class Meta:
        model = ProductTestResult
        fields = [
            "id",
            "pass_rate",
            "total",
            "passed",
            "failed",
            "errors",
            "report_url",
            "source",
            "kind",
            "task",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs):
        counted = attrs.get("passed", 0) + attrs.get("failed", 0) + attrs.get("errors", 0)
        if attrs.get("total") and counted > attrs["total"]:
            raise serializers.ValidationError("passed + failed + errors cannot be more than total.")
        return attrs


class ProductTestResultsSerializer(serializers.Serializer):
    latest = ProductTestResultSerializer(allow_null=True)
    history = ProductTestResultSerializer(many=True)


class ProductViewSet(RevisionCachedAnswers, LookupUnfiltered, viewsets.ModelViewSet):
    answer_topics = (CATALOG,)
    lookup_value_regex = "[0-9]+"
    serializer_class = ProductSerializer
    filterset_fields = ["name", "version"]
    search_fields = ["name", "version"]
    ordering_fields = ["name", "version", "created_at", "updated_at"]

    def get_queryset(self):
        # A rerun of some cases or a cancelled run is shown in the history, never as the product's pass rate.
        latest = ProductTestResult.objects.filter(product=OuterRef("pk"), kind=ProductTestResult.Kind.FULL).order_by(
            "-created_at", "-id"
        )
        return Product.objects.annotate(latest_pass_rate=Subquery(latest.values("pass_rate")[:1])).prefetch_related(
            Prefetch("tools", queryset=TestTool.objects.only("id"))
        )

    @extend_schema(request={"multipart/form-data": ProductUploadSerializer}, responses={201: ProductSerializer})
    @action(detail=False, methods=["post"], parser_classes=[StrictMultiPartParser])
    def upload(self, request):
        """Store a product's package file (creating the product if needed) and give back its download link."""
        upload = ProductUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        product, created = services.product_upload(**upload.validated_data)
        product = self.get_queryset().get(pk=product.pk)
        return Response(
            self.get_serializer(product).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(responses={200: OpenApiResponse(description="The product's package file.")})
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        product = self.get_object()
        if not product.file:
            raise Http404("This product has no uploaded file.")
        return FileResponse(product.file.open("rb"), as_attachment=True, filename=product.file_name)

    @extend_schema(methods=["GET"], responses=TestToolSerializer(many=True))
    @extend_schema(methods=["POST"], request=ToolLinkSerializer, responses={201: TestToolSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def tools(self, request, pk=None):
        """The tools linked to the product; POST links one more."""
        product = self.get_object()
        if request.method == "POST":
            link = ToolLinkSerializer(data=request.data)
            link.is_valid(raise_exception=True)
            services.product_tool_link(product=product, tool=link.validated_data["tool"])
            return Response(TestToolSerializer(link.validated_data["tool"]).data, status=status.HTTP_201_CREATED)
        return Response(TestToolSerializer(TestTool.objects.filter(product_links__product=product), many=True).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"tools/(?P<tool_id>\d+)", filter_backends=[])
    def unlink_tool(self, request, pk=None, tool_id=None):
        product = self.get_object()
        tool = get_object_or_404(TestTool, pk=tool_id, product_links__product=product)
        services.product_tool_unlink(product=product, tool=tool)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses=ProductTestResultsSerializer)
    @extend_schema(methods=["PUT"], request=ProductTestResultSerializer, responses={201: ProductTestResultSerializer})
    @action(detail=True, methods=["get", "put"], url_path="test-result", pagination_class=None, filter_backends=[])
    def test_result(self, request, pk=None):
        """The latest pass rate with its history; PUT records a new result (e.g. from another test service)."""
        product = self.get_object()
        if request.method == "PUT":
            result = ProductTestResultSerializer(data=request.data)
            result.is_valid(raise_exception=True)
            recorded = services.product_test_result_record(product=product, **result.validated_data)
            return Response(ProductTestResultSerializer(recorded).data, status=status.HTTP_201_CREATED)
        history = list(product.test_results.all()[:RESULT_HISTORY_LENGTH])
        full = ProductTestResult.Kind.FULL
        latest = next((result for result in history if result.kind == full), None)
        if latest is None:
            latest = product.test_results.filter(kind=full).first()
        return Response(ProductTestResultsSerializer({"latest": latest, "history": history}).data)


class TestToolViewSet(RevisionCachedAnswers, LookupUnfiltered, viewsets.ModelViewSet):
    answer_topics = (CATALOG,)
    lookup_value_regex = "[0-9]+"
    queryset = TestTool.objects.all()
    serializer_class = TestToolSerializer
    filterset_fields = ["name", "version", "products"]
    search_fields = ["name", "version"]
    ordering_fields = ["name", "version", "created_at"]

    @extend_schema(methods=["GET"], request=None, responses={200: OpenApiResponse(description="The tool's files.")})
    @extend_schema(
        methods=["PUT"], request={"multipart/form-data": PackageFileSerializer}, responses=TestToolSerializer
    )
    @action(detail=True, methods=["get", "put"], parser_classes=[StrictMultiPartParser])
    def file(self, request, pk=None):
        """The tool's files: an archive unpacked into the tool's install path on each node that installs it.

        PUT replaces it; nodes that have the tool already get the new one when their installs are applied
        again with reinstall (`POST /api/nodes/{id}/apply-installs/`)."""
        tool = self.get_object()
        if request.method == "PUT":
            upload = PackageFileSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            tool = services.tool_file_set(tool=tool, file=upload.validated_data["file"])
            return Response(self.get_serializer(tool).data)
        if not tool.file:
            raise Http404("This tool has no uploaded file.")
        return FileResponse(tool.file.open("rb"), as_attachment=True, filename=tool.file_name)
