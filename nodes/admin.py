from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count

from catalog.models import ProductTool, TestTool
from nodes import services
from nodes.models import Node, NodeProduct, NodeTool
from nodes.paths import resolve_install_path


class NodeForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown. Leave empty to keep the current password.",
    )

    class Meta:
        model = Node
        fields = ["name", "ip", "ssh_port", "username", "password", "install_root", "slots", "status"]

    def save(self, commit=True):
        if self.cleaned_data.get("password"):
            self.instance.set_password(self.cleaned_data["password"])
        return super().save(commit)


class NodeProductInlineForm(forms.ModelForm):
    tools = forms.ModelMultipleChoiceField(
        queryset=TestTool.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only tools linked to the product can be installed for it.",
    )

    class Meta:
        model = NodeProduct
        fields = ["product", "install_path", "tools"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["install_path"].required = False
        self.fields["install_path"].help_text = "Inside the node's install root; empty for the default."
        if self.instance.pk:
            self.fields["tools"].queryset = self.instance.product.tools.all()
            self.fields["tools"].initial = [link.tool_id for link in self.instance.tools.all()]

    def clean(self):
        cleaned = super().clean()
        product, node = cleaned.get("product"), self.instance.node
        if product is None:
            return cleaned
        tools = cleaned.get("tools") or []
        linked = set(ProductTool.objects.filter(product=product).values_list("tool_id", flat=True))
        unlinked = [str(tool) for tool in tools if tool.pk not in linked]
        if unlinked:
            raise ValidationError(
                f"{', '.join(unlinked)} not linked to {product}: link it on the product's page first."
            )
        try:
            cleaned["install_path"] = resolve_install_path(
                root=node.install_root,
                path=cleaned.get("install_path", ""),
                default=services.default_product_path(product),
            )
        except ValidationError as error:
            self.add_error("install_path", error)
        return cleaned


class NodeProductInline(admin.TabularInline):
    model = NodeProduct
    form = NodeProductInlineForm
    extra = 1
    show_change_link = True
    verbose_name_plural = "installed products (open one to set each tool's install path)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product").prefetch_related("tools", "product__tools")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    form = NodeForm
    list_display = ["name", "ip", "ssh_port", "status", "slots", "product_count", "last_heartbeat"]
    list_filter = ["status", "installs__product", "installs__tools__tool"]
    search_fields = ["name", "ip"]
    readonly_fields = ["status_reason", "last_heartbeat", "worker_version", "created_at", "updated_at"]
    inlines = [NodeProductInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(product_count=Count("installs", distinct=True))

    @admin.display(description="products", ordering="product_count")
    def product_count(self, node):
        return node.product_count

    def save_related(self, request, form, formsets, change):
        queues_before = services.node_capability_queues(node=form.instance)
        super().save_related(request, form, formsets, change)
        services.worker_queues_sync(node=form.instance, consumed=queues_before)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is not NodeProduct:
            return
        for inline_form in formset.forms:
            # Only rows the lab manager changed: saving a node must not re-record (and un-fail) the others.
            if not inline_form.has_changed() or inline_form.cleaned_data.get("DELETE"):
                continue
            node_product = inline_form.instance
            existing = {t.tool_id: t.install_path for t in node_product.tools.all()}
            services.node_product_tools_set(
                node_product=node_product,
                tools=[
                    services.ToolInstall(
                        tool=tool,
                        install_path=existing.get(tool.pk)
                        or resolve_install_path(
                            root=form.instance.install_root, path="", default=services.default_tool_path(tool)
                        ),
                    )
                    for tool in inline_form.cleaned_data.get("tools", [])
                ],
            )


class NodeToolForm(forms.ModelForm):
    class Meta:
        model = NodeTool
        fields = ["tool", "install_path"]

    def clean(self):
        cleaned = super().clean()
        tool, node_product = cleaned.get("tool"), self.instance.node_product
        if tool is None:
            return cleaned
        if not ProductTool.objects.filter(product=node_product.product, tool=tool).exists():
            raise ValidationError(
                f"{tool} is not linked to {node_product.product}: link it on the product's page first."
            )
        try:
            cleaned["install_path"] = resolve_install_path(
                root=node_product.node.install_root,
                path=cleaned.get("install_path", ""),
                default=services.default_tool_path(tool),
            )
        except ValidationError as error:
            self.add_error("install_path", error)
        return cleaned


class NodeToolInline(admin.TabularInline):
    model = NodeTool
    form = NodeToolForm
    extra = 1
    fields = ["tool", "install_path", "state", "state_message"]
    readonly_fields = ["state", "state_message"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tool")


@admin.register(NodeProduct)
class NodeProductAdmin(admin.ModelAdmin):
    list_display = ["node", "product", "install_path", "state", "updated_at"]
    list_select_related = ["node", "product"]
    list_filter = ["state", "node", "product"]
    search_fields = ["node__name", "product__name"]
    fields = ["node", "product", "install_path", "state", "state_message"]
    readonly_fields = fields
    inlines = [NodeToolInline]

    def has_add_permission(self, request):
        return False  # products are installed from the node's page, which checks the install root
