from django.contrib import admin

from accounts.roles import ReadOnlyAdminMixin
from reporting.models import Report


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["task", "status", "cancelled", "total", "passed", "failed", "errors", "success_rate", "created_at"]
    list_select_related = ["task"]
    list_filter = ["status", "cancelled", "task__product", "task__tool"]
    search_fields = ["task__name"]
    readonly_fields = [field.name for field in Report._meta.fields]
