from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from accounts.roles import LabAdminMixin
from api.errors import DomainError
from catalog.models import TestTool
from catalog.services import product_tools_require
from nodes import services, ssh
from nodes.models import Node, NodeOperation, NodeProduct, NodeTool
from nodes.paths import resolve_install_path

NODE_FIELDS = ["name", "ip", "ssh_port", "username", "managed", "install_root", "slots"]


class NodeForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown. Leave empty to keep the current password.",
    )

    private_key = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text="An SSH private key (OpenSSH or PEM, no passphrase), stored encrypted and never shown. "
        "Leave empty to keep the current one.",
    )
    forget_private_key = forms.BooleanField(required=False, help_text="Remove the stored private key.")

    class Meta:
        model = Node
        fields = [*NODE_FIELDS, "password", "private_key"]

    def clean_private_key(self):
        value = self.cleaned_data.get("private_key", "")
        if value.strip():
            try:
                ssh.load_private_key(value)
            except ValueError as error:
                raise ValidationError(str(error)) from None
        return value

    def credentials(self) -> dict[str, str | None]:
        """The credentials to store, as the node services take them: None keeps the stored one."""
        private_key = self.cleaned_data.get("private_key", "")
        return {
            "password": self.cleaned_data.get("password") or None,
            "private_key": private_key
            if private_key.strip()
            else ("" if self.cleaned_data.get("forget_private_key") else None),
        }

    def changed_fields(self) -> dict:
        """The node's own fields the page changed (credentials are not among them)."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name in NODE_FIELDS}


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
        if "install_path" not in self.fields:  # shown read-only, to someone who may not change it
            return
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
        try:
            product_tools_require(product=product, tools=list(cleaned.get("tools") or []))
        except DomainError as error:
            raise ValidationError(error.message) from error
        try:
            cleaned["install_path"] = resolve_install_path(
                root=node.install_root,
                path=cleaned.get("install_path", ""),
                default=services.default_product_path(product),
            )
        except ValidationError as error:
            self.add_error("install_path", error)
        return cleaned


class NodeProductInline(LabAdminMixin, admin.TabularInline):
    model = NodeProduct
    form = NodeProductInlineForm
    extra = 1
    show_change_link = True
    verbose_name_plural = "installed products (open one to set each tool's install path)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product").prefetch_related("tools", "product__tools")

    def get_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return super().get_fields(request, obj)
        return ["product", "install_path", "state", "installed_tools"]  # a reader sees what is there, no form

    def get_readonly_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return ["state"]
        return ["product", "install_path", "state", "installed_tools"]

    @admin.display(description="tools")
    def installed_tools(self, install: NodeProduct) -> str:
        return ", ".join(str(tool_install.tool) for tool_install in install.tools.all()) or "-"


class NodeOperationInline(LabAdminMixin, admin.TabularInline):
    model = NodeOperation
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["kind", "state", "message", "requested_by", "created_at", "finished_at"]
    readonly_fields = fields
    verbose_name_plural = "operations on the machine (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by")


def _formset_saved_by_services(formset) -> None:
    """Install rows are written by the install services, not by the formset; the admin's history entry
    still asks the formset what it saved."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


def _request(kind: str, done: str):
    def action(modeladmin, request, queryset):
        queued = 0
        for node in queryset:
            try:
                if kind == NodeOperation.Kind.INSTALL:
                    services.installs_apply_request(node=node, user=request.user)
                else:
                    services.operation_request(node=node, kind=kind, user=request.user)
            except DomainError as error:
                modeladmin.message_user(request, error.message, messages.ERROR)
                continue
            queued += 1
        modeladmin.message_user(request, f"{done} queued for {queued} node(s); see each node's operations.")

    return action


@admin.register(Node)
class NodeAdmin(LabAdminMixin, admin.ModelAdmin):
    form = NodeForm
    list_display = ["name", "address", "status", "heard", "ssh_shown", "worker_version", "slots", "product_count"]
    list_filter = ["status", "ssh_status", "managed", "installs__product", "installs__tools__tool"]
    search_fields = ["name", "ip"]
    readonly_fields = [
        "status",
        "status_reason",
        "last_heartbeat",
        "worker_version",
        "worker_protocol",
        "infra_error_streak",
        "ssh_status",
        "ssh_message",
        "host_key_fingerprint",
        "offered_host_key_fingerprint",
        "checked_at",
        "facts",
        "created_at",
        "updated_at",
    ]
    inlines = [NodeProductInline, NodeOperationInline]
    # The form's credential fields are for changing them; a reader sees none of them, not even as empty.
    CREDENTIAL_FIELDS = ("password", "private_key", "forget_private_key")

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if self.has_change_permission(request, obj):
            return fields
        return [field for field in fields if field not in self.CREDENTIAL_FIELDS]

    actions = [
        "check_machine",
        "deploy_worker",
        "apply_installs",
        "start_maintenance",
        "end_maintenance",
        "accept_offered_host_key",
    ]

    check_machine = admin.action(description="Check the machine over SSH", permissions=["lab_manager"])(
        _request(NodeOperation.Kind.CHECK, "A check")
    )
    deploy_worker = admin.action(description="Deploy (or update) the worker", permissions=["lab_manager"])(
        _request(NodeOperation.Kind.DEPLOY, "A worker deployment")
    )
    apply_installs = admin.action(
        description="Apply installs again (pending, failed, removals)", permissions=["lab_manager"]
    )(_request(NodeOperation.Kind.INSTALL, "Installing"))

    @admin.action(description="Put in maintenance (no new cases; running ones finish)", permissions=["lab_manager"])
    def start_maintenance(self, request, queryset):
        for node in queryset:
            try:
                services.node_maintenance_set(node=node, enabled=True, reason=f"Maintenance started by {request.user}.")
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{node} is in maintenance.")

    @admin.action(description="End maintenance", permissions=["lab_manager"])
    def end_maintenance(self, request, queryset):
        for node in queryset.filter(status=Node.Status.MAINTENANCE):
            services.node_maintenance_set(node=node, enabled=False)
        self.message_user(request, "Maintenance ended; each node is online again with its worker's next heartbeat.")

    @admin.action(
        description="Accept the host key the machine now offers (compare its fingerprint first)",
        permissions=["lab_manager"],
    )
    def accept_offered_host_key(self, request, queryset):
        for node in queryset.exclude(offered_host_key=""):
            try:
                services.node_host_key_accept(node=node, fingerprint=ssh.fingerprint(node.offered_host_key))
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{node}: pinned {ssh.fingerprint(node.offered_host_key)}.")

    @admin.display(description="pinned host key")
    def host_key_fingerprint(self, node):
        return ssh.fingerprint(node.host_key) or "none yet (pinned at the first contact)"

    @admin.display(description="offered host key (refused)")
    def offered_host_key_fingerprint(self, node):
        return ssh.fingerprint(node.offered_host_key) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(product_count=Count("installs", distinct=True))

    def save_model(self, request, obj, form, change):
        """Through the same services as the API: a change writes only the fields the page changed."""
        credentials = form.credentials()
        if change:
            services.node_update(node=obj, **credentials, **form.changed_fields())
        else:
            services.node_add(node=obj, **{name: value or "" for name, value in credentials.items()})

    def delete_model(self, request, obj):
        self._remove(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        if Node.objects.filter(pk=obj_id).exists():  # refused, or being retired: the message says which
            return HttpResponseRedirect(reverse("admin:nodes_node_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request, queryset):
        for node in queryset:
            self._remove(request, node)

    def _remove(self, request, node: Node) -> None:
        """Through the same service as the API: refused while it runs cases, retired over SSH when managed."""
        try:
            operation = services.node_delete(node=node, user=request.user)
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        if operation is not None:
            self.message_user(
                request, f"{node}: its worker is being stopped and its files deleted; the node goes when that is done."
            )

    @admin.display(description="address", ordering="ip")
    def address(self, node):
        return node.ip if node.ssh_port == 22 else f"{node.ip}:{node.ssh_port}"

    @admin.display(description="last heard", ordering="-last_heartbeat")
    def heard(self, node):
        """How long ago its worker's last heartbeat came, as a person says it."""
        if node.last_heartbeat is None:
            return "never"
        seconds = max(0, int((timezone.now() - node.last_heartbeat).total_seconds()))
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        return f"{seconds // 3600} h ago" if seconds < 172800 else f"{seconds // 86400} days ago"

    @admin.display(description="SSH", ordering="ssh_status")
    def ssh_shown(self, node):
        return node.get_ssh_status_display() if node.managed else "not managed"

    @admin.display(description="products", ordering="product_count")
    def product_count(self, node):
        return node.product_count

    def save_formset(self, request, form, formset, change):
        if formset.model is not NodeProduct:
            return super().save_formset(request, form, formset, change)
        _formset_saved_by_services(formset)
        if not any(inline_form.has_changed() for inline_form in formset.forms):
            return None  # saving a node must not re-record (and un-fail) installs nobody touched
        # The page's rows become the node's installs, by the same path as the API: on a managed node
        # that is an install operation on the machine, not just rows.
        installs = []
        for inline_form in formset.forms:
            data = inline_form.cleaned_data
            if not data or data.get("DELETE") or not data.get("product"):
                continue
            existing = (
                {t.tool_id: t.install_path for t in inline_form.instance.tools.all()} if inline_form.instance.pk else {}
            )
            installs.append(
                services.ProductInstall(
                    product=data["product"],
                    install_path=data.get("install_path", ""),
                    tools=[
                        services.ToolInstall(tool=tool, install_path=existing.get(tool.pk, ""))
                        for tool in data.get("tools", [])
                    ],
                )
            )
        services.node_installs_set(node=form.instance, installs=installs)
        return None


class NodeToolForm(forms.ModelForm):
    class Meta:
        model = NodeTool
        fields = ["tool", "install_path"]

    def clean(self):
        cleaned = super().clean()
        tool, node_product = cleaned.get("tool"), self.instance.node_product
        if tool is None:
            return cleaned
        try:
            product_tools_require(product=node_product.product, tools=[tool])
        except DomainError as error:
            raise ValidationError(error.message) from error
        try:
            cleaned["install_path"] = resolve_install_path(
                root=node_product.node.install_root,
                path=cleaned.get("install_path", ""),
                default=services.default_tool_path(tool),
            )
        except ValidationError as error:
            self.add_error("install_path", error)
        return cleaned


class NodeToolInline(LabAdminMixin, admin.TabularInline):
    model = NodeTool
    form = NodeToolForm
    extra = 1
    fields = ["tool", "install_path", "state", "state_message"]
    readonly_fields = ["state", "state_message"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tool")


@admin.register(NodeProduct)
class NodeProductAdmin(LabAdminMixin, admin.ModelAdmin):
    list_display = ["node", "product", "install_path", "state", "updated_at"]
    list_select_related = ["node", "product"]
    list_filter = ["state", "node", "product"]
    search_fields = ["node__name", "product__name"]
    fields = ["node", "product", "install_path", "state", "state_message"]
    readonly_fields = fields
    inlines = [NodeToolInline]

    def has_add_permission(self, request):
        return False  # products are installed from the node's page, which checks the install root

    def save_formset(self, request, form, formset, change):
        _formset_saved_by_services(formset)
        if not any(inline_form.has_changed() for inline_form in formset.forms):
            return
        tools = [
            services.ToolInstall(tool=data["tool"], install_path=data["install_path"])
            for data in (inline_form.cleaned_data for inline_form in formset.forms)
            if data and data.get("tool") and not data.get("DELETE")
        ]
        services.node_tools_set(node_product=form.instance, tools=tools)
