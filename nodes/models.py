from datetime import timedelta
from typing import Self

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from catalog.models import Product, TestTool
from messaging.revisions import NODES, RevisedModel, RevisedQuerySet
from nodes import crypto
from nodes.paths import validate_install_root


class InstallState(models.TextChoices):
    PENDING = "pending", "Pending"
    INSTALLING = "installing", "Installing"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Failed"
    REMOVING = "removing", "Removing"


class SSHStatus(models.TextChoices):
    """What the last SSH contact with a machine found; every failure says what to fix in ssh_message."""

    UNCHECKED = "unchecked", "Not checked yet"
    OK = "ok", "Reachable"
    UNREACHABLE = "unreachable", "Unreachable"
    REFUSED = "refused", "Connection refused"
    TIMEOUT = "timeout", "Timed out"
    AUTH_FAILED = "auth_failed", "Login refused"
    HOST_KEY_CHANGED = "host_key_changed", "Host key changed"
    FAILED = "failed", "Command failed"


class NodeQuerySet(RevisedQuerySet["Node"]):
    def online(self) -> Self:
        """Online and heard from recently: true to the second, not only as of the last liveness sweep."""
        fresh_since = timezone.now() - timedelta(seconds=settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS)
        return self.filter(status=Node.Status.ONLINE, last_heartbeat__gte=fresh_since)

    def capable_of(self, *, product: Product, tool: TestTool) -> Self:
        """Nodes with `product` and `tool` (for that product) both installed."""
        return self.filter(
            installs__product=product,
            installs__state=InstallState.INSTALLED,
            installs__tools__tool=tool,
            installs__tools__state=InstallState.INSTALLED,
        ).distinct()


class Node(RevisedModel):
    revision_topic = NODES

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"
        MAINTENANCE = "maintenance", "Maintenance"
        QUARANTINED = "quarantined", "Quarantined"
        OUTDATED = "outdated", "Worker too old"
        RETIRING = "retiring", "Being removed"

    # A lab manager or the control plane took the node out of service: heartbeats do not bring it back.
    HELD_STATUSES = (Status.MAINTENANCE, Status.QUARANTINED, Status.RETIRING)

    name = models.SlugField(max_length=63, unique=True, help_text="Letters, digits, '-' and '_'; names the worker.")
    ip = models.GenericIPAddressField("IP address")
    ssh_port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", "A login name: letters, digits, '.', '_' and '-'.")
        ],
    )
    password_encrypted = crypto.EncryptedTextField()
    private_key_encrypted = crypto.EncryptedTextField()
    # The key its worker signs events with (so nothing else can speak for the node), and the password of its
    # own broker user (which may reach only its queues, the events list and the cancel set).
    event_key_encrypted = crypto.EncryptedTextField()
    broker_password_encrypted = crypto.EncryptedTextField()
    managed = models.BooleanField(
        "installs over SSH",
        default=True,
        help_text="TestHub copies products and tools to the machine over SSH. Off: installs are only recorded "
        "here, and someone else puts the files on the machine.",
    )
    host_key = models.TextField(
        blank=True, editable=False, help_text="The machine's SSH host key, pinned when first seen."
    )
    offered_host_key = models.TextField(
        blank=True, editable=False, help_text="A different host key the machine offered; refused until accepted."
    )
    ssh_status = models.CharField(max_length=20, choices=SSHStatus.choices, default=SSHStatus.UNCHECKED)
    ssh_message = models.CharField(max_length=1000, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True, editable=False)
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
    worker_protocol = models.PositiveSmallIntegerField(null=True, blank=True)
    infra_error_streak = models.PositiveIntegerField(
        default=0, editable=False, help_text="Cases in a row that ended in an infrastructure error here."
    )
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

    def set_private_key(self, private_key: str) -> None:
        self.private_key_encrypted = crypto.encrypt(private_key) if private_key else ""

    def get_private_key(self) -> str:
        return crypto.decrypt(self.private_key_encrypted) if self.private_key_encrypted else ""

    @property
    def has_private_key(self) -> bool:
        return bool(self.private_key_encrypted)

    @property
    def takes_work(self) -> bool:
        """Whether its worker should consume capability queues (an offline one picks up again when back)."""
        return self.status in (self.Status.UNKNOWN, self.Status.ONLINE, self.Status.OFFLINE)


class NodeProduct(RevisedModel):
    """A product installed on a node, at an install path on that machine."""

    revision_topic = NODES
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="installs")
    # Protected: a product installed somewhere is uninstalled there first, so its files do not stay behind.
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="installs")
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


class NodeTool(RevisedModel):
    """A tool installed on a node for one of its installed products."""

    revision_topic = NODES
    node_product = models.ForeignKey(NodeProduct, on_delete=models.CASCADE, related_name="tools")
    tool = models.ForeignKey(TestTool, on_delete=models.PROTECT, related_name="installs")
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


class NodeOperation(RevisedModel):
    """Something the control worker does to a machine over SSH, with how it went."""

    revision_topic = NODES

    class Kind(models.TextChoices):
        CHECK = "check", "Check"
        INSTALL = "install", "Apply installs"
        DEPLOY = "deploy", "Deploy worker"
        RETIRE = "retire", "Remove the node"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    # Kept when the node is gone: a removal reports how it went after the node's row is deleted.
    node = models.ForeignKey(Node, null=True, on_delete=models.SET_NULL, related_name="operations")
    node_name = models.CharField(max_length=63, editable=False, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    message = models.TextField(blank=True, help_text="What was done, or what went wrong and what to do about it.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["node", "kind", "state"], name="operation_node_kind_state")]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.node_name} ({self.state})"
