from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action

from accounts.permissions import SubmitPermission
from api.answers import RevisionCachedAnswers
from api.views import LookupUnfiltered
from messaging.revisions import CATALOG, TASKS
from reporting.models import Report
from reporting.services import SUCCESS_RATE_FORMULA, NodeSummary


class ReportSerializer(serializers.ModelSerializer):
    task_name = serializers.CharField(source="task.name", read_only=True)
    product = serializers.IntegerField(source="task.product_id", read_only=True)
    tool = serializers.IntegerField(source="task.tool_id", read_only=True)
    download_url = serializers.SerializerMethodField()
    success_rate_formula = serializers.SerializerMethodField()
    rerun = serializers.SerializerMethodField(help_text="A rerun of some cases: not the product's pass rate.")
    by_node = serializers.SerializerMethodField(
        help_text="Each node's figures: its cases, their success rate and mean duration."
    )

    class Meta:
        model = Report
        fields = [
            "id",
            "task",
            "task_name",
            "product",
            "tool",
            "status",
            "cancelled",
            "total",
            "passed",
            "failed",
            "errors",
            "not_run",
            "muted",
            "flaky_failures",
            "rerun",
            "compared_with",
            "new_failures",
            "fixed",
            "success_rate",
            "success_rate_formula",
            "duration_seconds",
            "by_node",
            "download_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_rerun(self, report: Report) -> bool:
        return report.task.rerun_of_id is not None

    def get_success_rate_formula(self, report: Report) -> str:
        return SUCCESS_RATE_FORMULA

    def get_by_node(self, report: Report) -> list[NodeSummary]:
        return report.by_node

    def get_download_url(self, report: Report) -> str | None:
        if not report.file:
            return None
        return self.context["request"].build_absolute_uri(f"/api/reports/{report.pk}/download/")


class ReportViewSet(RevisionCachedAnswers, LookupUnfiltered, viewsets.ReadOnlyModelViewSet):
    answer_topics = (TASKS, CATALOG)
    lookup_value_regex = "[0-9]+"
    permission_classes = [SubmitPermission]
    serializer_class = ReportSerializer
    queryset = Report.objects.select_related("task")
    filterset_fields = ["status", "cancelled", "task", "task__product", "task__tool"]
    ordering_fields = ["created_at", "success_rate"]

    @extend_schema(responses={200: OpenApiResponse(description="The report as an .xlsx file.")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        report = self.get_object()
        if not report.file:
            raise Http404("This report has no file yet.")
        return FileResponse(report.file.open("rb"), as_attachment=True, filename=f"testhub-task-{report.task_id}.xlsx")
