from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.roles import ReadOnlyAdminMixin
from reporting.models import Report
from reporting.services import run_kind

_NODE_COLUMNS = [
    ("node", "node"), ("total", "total"), ("passed", "passed"), ("failed", "failed"), ("errors", "errors"),
    ("success rate (%)", "success_rate"), ("mean duration (s)", "mean_duration"),
]  # fmt: skip


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "task", "status", "outcome", "total", "passed", "failed", "errors", "success_rate", "download", "created_at",
    ]  # fmt: skip
    list_select_related = ["task"]
    list_filter = ["status", "cancelled", "task__product", "task__tool"]
    search_fields = ["task__name"]
    fields = [
        "task_link", "status", "outcome", "total", "passed", "failed", "errors", "not_run", "muted", "flaky_failures",
        "success_rate", "compared_with", "new_failures", "fixed", "duration_seconds", "node_table", "download",
        "created_at",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="task")
    def task_link(self, report):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:execution_task_change", args=[report.task_id]), report.task
        )

    @admin.display(description="outcome")
    def outcome(self, report):
        """Plain words: a cancelled run is a status, not a failure of the report."""
        return run_kind(task=report.task, cancelled=report.cancelled)

    @admin.display(description="file")
    def download(self, report):
        if not report.file:
            return "-"
        return format_html('<a href="{}">.xlsx</a>', f"/api/reports/{report.pk}/download/")

    @admin.display(description="by node")
    def node_table(self, report):
        if not report.by_node:
            return "-"
        header = format_html_join("", "<th>{}</th>", ((title,) for title, _ in _NODE_COLUMNS))
        rows = format_html_join(
            "",
            "<tr>" + "<td>{}</td>" * len(_NODE_COLUMNS) + "</tr>",
            (
                tuple("-" if row.get(key) is None else row.get(key) for _, key in _NODE_COLUMNS)
                for row in report.by_node
            ),
        )
        return format_html("<table><tr>{}</tr>{}</table>", header, rows)
