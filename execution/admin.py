from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from accounts.roles import LabAdminMixin, ReadOnlyAdminMixin
from api.errors import DomainError
from execution import services
from execution.models import (
    Case,
    FailureSignature,
    MutedCase,
    RejectedEvent,
    ShareWeight,
    Task,
    TaskTemplate,
    WebhookHost,
)

CASES_SHOWN_ON_TASK_PAGE = 200
LOG_SHOWN_CHARACTERS = 64 * 1024


def _when(moment) -> str:
    """A time as the rest of admin shows one (the site's time zone and format), or a dash."""
    return date_format(localtime(moment), "DATETIME_FORMAT") if moment else "-"


@admin.register(Task)
class TaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id", "name", "product", "tool", "priority", "status", "progress_shown", "success_rate_shown", "report_link",
        "created_by", "created_at",
    ]  # fmt: skip
    list_select_related = ["product", "tool", "created_by", "report"]
    list_filter = ["status", "product", "tool", "priority"]
    search_fields = ["name", "created_by__username"]
    date_hierarchy = "created_at"
    actions = ["cancel", "rerun_failed"]
    fields = [
        "name",
        "product",
        "tool",
        "priority",
        "case_timeout",
        "status",
        "created_by",
        "rerun_of",
        "progress_shown",
        "success_rate_shown",
        "report_link",
        "counts",
        "created_at",
        "dispatched_at",
        "started_at",
        "finished_at",
        "case_table",
    ]
    readonly_fields = fields

    @admin.display(description="progress")
    def progress_shown(self, task):
        if not task.cases_total:
            return "-"
        return f"{task.cases_ended}/{task.cases_total} ({task.progress:.0f}%)"

    @admin.display(description="success rate")
    def success_rate_shown(self, task):
        rate = task.shown_success_rate
        return "-" if rate is None else f"{rate:.2f}%"

    @admin.display(description="report")
    def report_link(self, task):
        report = getattr(task, "report", None)
        if report is None:
            return "-"
        page = reverse("admin:reporting_report_change", args=[report.pk])
        if not report.file:
            return format_html('<a href="{}">{}</a>', page, report.get_status_display())
        download = f"/api/reports/{report.pk}/download/"
        return format_html('<a href="{}">{}</a> · <a href="{}">.xlsx</a>', page, report.get_status_display(), download)

    @admin.display(description="cases by status")
    def counts(self, task):
        return ", ".join(f"{status}: {getattr(task, f'cases_{status}')}" for status in Case.Status.values)

    @admin.display(description="cases")
    def case_table(self, task):
        cases = task.cases.defer("log").select_related("node")[:CASES_SHOWN_ON_TASK_PAGE]
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            '<td><a href="{}">log</a></td></tr>',
            (
                (
                    reverse("admin:execution_case_change", args=[case.pk]),
                    case.name,
                    case.status,
                    case.node or "-",
                    case.attempts,
                    case.exit_code if case.exit_code is not None else "-",
                    _when(case.started_at),
                    f"/api/cases/{case.pk}/log/",
                )
                for case in cases
            ),
        )
        all_cases = reverse("admin:execution_case_changelist") + f"?task__id__exact={task.pk}"
        return format_html(
            "<table><tr><th>case</th><th>status</th><th>node</th><th>attempts</th><th>exit code</th>"
            "<th>started</th><th></th></tr>"
            '{}</table><p><a href="{}">All {} cases, with filters</a></p>',
            rows,
            all_cases,
            task.cases_total,
        )

    @admin.action(description="Cancel the selected tasks", permissions=["lab_manager"])
    def cancel(self, request, queryset):
        for task in queryset:
            try:
                services.task_cancel(task=task)
            except DomainError as error:
                self.message_user(request, f"{task}: {error.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"{task}: cancelling.")

    @admin.action(description="Rerun the failed and errored cases of the selected tasks", permissions=["lab_manager"])
    def rerun_failed(self, request, queryset):
        for task in queryset.select_related("product", "tool"):
            try:
                rerun = services.task_rerun(task=task, user=request.user, which="failed")
            except DomainError as error:
                self.message_user(request, f"{task}: {error.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"{task}: rerun as task #{rerun.pk}.")


@admin.register(Case)
class CaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "task", "status", "node", "attempts", "exit_code", "started_at", "finished_at"]
    list_select_related = ["task", "node"]
    list_filter = ["status", "task__product", "task__tool", "node"]
    search_fields = ["name", "task__name"]
    raw_id_fields = ["task"]
    fields = [
        "name", "task", "status", "node", "attempts", "exit_code", "started_at", "finished_at", "failure",
        "signature", "log_shown",
    ]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("log")  # read only where shown: one case's page

    @admin.display(description="log")
    def log_shown(self, case):
        """The log as the tool printed it (monospace, its layout kept); a long one's tail first, where the error
        is, with the whole log one click away."""
        text = Case.objects.values_list("log", flat=True).get(pk=case.pk)
        cut = len(text) > LOG_SHOWN_CHARACTERS
        shown = text[-LOG_SHOWN_CHARACTERS:] if cut else text
        download = f"/api/cases/{case.pk}/log/?download=1"
        note = (
            format_html("<p>The last {} of {} characters; the beginning is in the download.</p>", len(shown), len(text))
            if cut
            else ""
        )
        return format_html(
            '{}<pre style="white-space: pre-wrap; font-family: monospace; max-height: 40em; overflow: auto; '
            'padding: 0.5em; border: 1px solid var(--hairline-color);">{}</pre>'
            '<p><a href="{}">Download the log</a></p>',
            note,
            shown or "(no output)",
            download,
        )


class CaseLinesField(forms.CharField):
    """The case names, one per line, as a tester writes them (a list of names in the model); blank lines are
    dropped, and the rules of the API apply when the form is checked (execution.services.template_check)."""

    widget = forms.Textarea(attrs={"rows": 12, "cols": 80, "style": "font-family: monospace"})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else (value or "")

    def to_python(self, value):
        # Split on newlines only: any other line separator stays in its name, for the rules to refuse.
        lines = (value or "").replace("\r\n", "\n").split("\n")
        return [line.strip(" \t") for line in lines if line.strip(" \t")]

    def validate(self, value):
        if not value:
            raise forms.ValidationError("Give at least one case name, one per line.")


class TaskTemplateForm(forms.ModelForm):
    cases = CaseLinesField(help_text="One case name per line, in the order they should run.")

    class Meta:
        model = TaskTemplate
        fields = ["name", "product", "tool", "cases", "priority", "case_timeout", "cron"]

    def _post_clean(self):
        """The rules the API applies too (execution.services.template_check), on the instance the form built."""
        super()._post_clean()
        if self.instance.product_id is None or self.instance.tool_id is None or self.errors:
            return
        try:
            services.template_check(template=self.instance)
        except DomainError as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)


@admin.register(TaskTemplate)
class TaskTemplateAdmin(LabAdminMixin, admin.ModelAdmin):
    form = TaskTemplateForm
    list_display = ["name", "product", "tool", "priority", "cron", "last_run_error", "updated_at"]
    list_select_related = ["product", "tool"]
    list_filter = ["product", "tool"]
    search_fields = ["name"]
    fields = ["name", "product", "tool", "cases", "priority", "case_timeout", "cron", "last_run_error", "recent_runs"]
    readonly_fields = ["last_run_error", "recent_runs"]
    actions = ["run_now"]

    def save_model(self, request, obj, form, change):
        services.template_save(template=obj, user=request.user)

    def delete_model(self, request, obj):
        services.template_delete(template=obj)

    def delete_queryset(self, request, queryset):
        for template in queryset:
            services.template_delete(template=template)

    @admin.display(description="recent runs")
    def recent_runs(self, template):
        runs = template.runs.select_related("report").order_by("-created_at")[:20]
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:execution_task_change", args=[run.pk]),
                    run.pk,
                    run.created_at,
                    run.status,
                    getattr(getattr(run, "report", None), "success_rate", None) or "-",
                )
                for run in runs
            ),
        )
        return format_html(
            "<table><tr><th>task</th><th>started</th><th>status</th><th>pass rate</th></tr>{}</table>", rows
        )

    @admin.action(description="Run the selected templates now", permissions=["lab_manager"])
    def run_now(self, request, queryset):
        for template in queryset.select_related("product", "tool"):
            try:
                task = services.template_run(template=template, user=request.user)
            except DomainError as error:
                self.message_user(request, f"{template}: {error.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"{template}: started task #{task.pk}.")


@admin.register(RejectedEvent)
class RejectedEventAdmin(LabAdminMixin, admin.ModelAdmin):
    """Worker events the recorder set aside, with why: what a lab manager looks at when a node misbehaves."""

    list_display = ["received_at", "node", "reason"]
    list_filter = ["node"]
    search_fields = ["node", "reason", "payload"]
    date_hierarchy = "received_at"
    fields = ["received_at", "node", "reason", "payload"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookHost)
class WebhookHostAdmin(LabAdminMixin, admin.ModelAdmin):
    list_display = ["host", "allow_private", "note", "created_at"]
    search_fields = ["host", "note"]


@admin.register(ShareWeight)
class ShareWeightAdmin(LabAdminMixin, admin.ModelAdmin):
    """Who gets more of the lab while several users wait for one capability (README: "Sharing the lab")."""

    list_display = ["__str__", "user", "group", "weight"]
    list_select_related = ["user", "group"]
    search_fields = ["user__username", "group__name"]


@admin.register(MutedCase)
class MutedCaseAdmin(LabAdminMixin, admin.ModelAdmin):
    """Known flaky cases, muted: still run and recorded, left out of success rates (README: "What results mean")."""

    list_display = ["name", "product_name", "tool", "note", "muted_by", "muted_at"]
    list_filter = ["tool"]
    list_select_related = ["tool", "muted_by"]
    search_fields = ["name", "product_name", "note"]
    fields = ["product_name", "tool", "name", "note"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.muted_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(FailureSignature)
class FailureSignatureAdmin(LabAdminMixin, admin.ModelAdmin):
    """What failures have in common; a note or bug link shows on every failure with it."""

    list_display = ["title", "product_name", "tool", "bug_url", "first_seen_at"]
    list_filter = ["tool"]
    list_select_related = ["tool"]
    search_fields = ["title", "note", "product_name"]
    fields = ["title", "product_name", "tool", "note", "bug_url", "noted_by", "noted_at", "first_seen_at"]
    readonly_fields = ["title", "product_name", "tool", "noted_by", "noted_at", "first_seen_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False  # made by the recorder from failures' logs

    def save_model(self, request, obj, form, change):
        services.failure_signature_note(signature=obj, user=request.user, note=obj.note, bug_url=obj.bug_url)
