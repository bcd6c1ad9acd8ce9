from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from catalog.models import Product, TestTool
from nodes.paths import validate_install_root
from testhub import crypto


class InstallState(models.TextChoices):
    PENDING = "pending", "Pending"
    INSTALLING = "installing", "Installing"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Failed"
    REMOVING = "removing", "Removing"


class NodeQuerySet(models.QuerySet):
    def online(self):
        return self.filter(status=Node.Status.ONLINE)

    def capable_of(self, *, product: Product, tool: TestTool):
        """Nodes with `product` and `tool` (for that product) both installed."""
        return self.filter(
            installs__product=product,
            installs__state=InstallState.INSTALLED,
            installs__tools__tool=tool,
            installs__tools__state=InstallState.INSTALLED,
        ).distinct()


class Node(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"
        MAINTENANCE = "maintenance", "Maintenance"
        QUARANTINED = "quarantined", "Quarantined"

    name = models.SlugField(max_length=63, unique=True, help_text="Letters, digits, '-' and '_'; names the worker.")
    ip = models.GenericIPAddressField("IP address")
    ssh_port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(max_length=64)
    password_encrypted = models.TextField(blank=True, editable=False)
    install_root = models.CharField(
        max_length=255,
        default=settings.TESTHUB_DEFAULT_INSTALL_ROOT,
        validators=[validate_install_root],
        help_text="Everything TestHub installs on this machine goes below this folder.",
    )
    slots = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="How many cases the machine runs at once.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN, db_index=True)
    status_reason = models.CharField(max_length=500, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    worker_version = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def set_password(self, raw_password: str) -> None:
        self.password_encrypted = crypto.encrypt(raw_password) if raw_password else ""

    def get_password(self) -> str:
        return crypto.decrypt(self.password_encrypted) if self.password_encrypted else ""

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)


class NodeProduct(models.Model):
    """A product installed on a node, at an install path on that machine."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="installs")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="installs")
    install_path = models.CharField(max_length=255)
    state = models.CharField(max_length=20, choices=InstallState.choices, default=InstallState.INSTALLED)
    state_message = models.CharField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["node_id", "product_id"]
        verbose_name = "installed product"
        constraints = [models.UniqueConstraint(fields=["node", "product"], name="node_product_unique")]

    def __str__(self):
        return f"{self.product} on {self.node}"


class NodeTool(models.Model):
    """A tool installed on a node for one of its installed products."""

    node_product = models.ForeignKey(NodeProduct, on_delete=models.CASCADE, related_name="tools")
    tool = models.ForeignKey(TestTool, on_delete=models.CASCADE, related_name="installs")
    install_path = models.CharField(max_length=255)
    state = models.CharField(max_length=20, choices=InstallState.choices, default=InstallState.INSTALLED)
    state_message = models.CharField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["node_product_id", "tool_id"]
        verbose_name = "installed tool"
        constraints = [models.UniqueConstraint(fields=["node_product", "tool"], name="node_tool_unique")]

    def __str__(self):
        return f"{self.tool} for {self.node_product}"
