from django.contrib import admin, messages
from django.db import models
from django.db.models import Count

from accounts.roles import LabAdminMixin
from api.errors import DomainError
from catalog import services
from catalog.models import Product, ProductTestResult, ProductTool, TestTool


def _unlink(modeladmin, request, link: ProductTool) -> None:
    """Through the service, which refuses while the tool is installed for the product or tasks still use it."""
    try:
        services.product_tool_unlink(product=link.product, tool=link.tool)
    except DomainError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)


class ProductToolInline(LabAdminMixin, admin.TabularInline):
    model = ProductTool
    extra = 1
    autocomplete_fields = ["tool"]
    verbose_name = "linked test tool"
    verbose_name_plural = "linked test tools (the tools that can test this product)"


class ProductTestResultInline(LabAdminMixin, admin.TabularInline):
    model = ProductTestResult
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["created_at", "pass_rate", "total", "passed", "failed", "errors", "source", "report_url"]
    readonly_fields = fields
    ordering = ["-created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created_at")


@admin.register(Product)
class ProductAdmin(LabAdminMixin, admin.ModelAdmin):
    list_display = ["name", "version", "tool_count", "file", "updated_at"]
    list_filter = ["name", "tools"]
    search_fields = ["name", "version"]
    inlines = [ProductToolInline, ProductTestResultInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tool_count=Count("tool_links"))

    @admin.display(description="tools", ordering="tool_count")
    def tool_count(self, product):
        return product.tool_count

    def save_formset(self, request, form, formset, change):
        if formset.model is not ProductTool:
            return super().save_formset(request, form, formset, change)
        for link in formset.save(commit=False):
            link.save()
        for link in formset.deleted_objects:
            _unlink(self, request, link)
        return None


@admin.register(TestTool)
class TestToolAdmin(LabAdminMixin, admin.ModelAdmin):
    list_display = ["name", "version", "command_template", "updated_at"]
    list_filter = ["name"]
    search_fields = ["name", "version"]


@admin.register(ProductTool)
class ProductToolAdmin(LabAdminMixin, admin.ModelAdmin):
    list_display = ["product", "tool", "created_at"]
    list_select_related = ["product", "tool"]
    list_filter = ["product", "tool"]
    autocomplete_fields = ["product", "tool"]
    search_fields = ["product__name", "tool__name"]

    def delete_model(self, request, obj):
        _unlink(self, request, obj)

    def delete_queryset(self, request, queryset):
        for link in queryset.select_related("product", "tool"):
            _unlink(self, request, link)


@admin.register(ProductTestResult)
class ProductTestResultAdmin(LabAdminMixin, admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["product", "pass_rate", "total", "passed", "failed", "errors", "source", "created_at"]
    list_select_related = ["product"]
    list_filter = ["product", "source"]
    search_fields = ["product__name", "source"]
    date_hierarchy = "created_at"
