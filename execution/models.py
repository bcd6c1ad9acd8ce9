from typing import Self

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.db.models import Count, Q

from catalog.models import Product, TestTool
from execution.validators import CASE_NAME_MAX_LENGTH, validate_one_line
from messaging.revisions import TASKS, RevisedModel, RevisedQuerySet, revisions_bump
from nodes.models import Node


class TaskQuerySet(RevisedQuerySet["Task"]):
    def unfinished(self) -> Self:
        """Tasks without their report yet: the report closes a task."""
        return self.filter(status__in=[Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.CANCELLING])

    def with_recounted_cases(self):
        """Annotate recounted_<status> from the case rows: what the kept counts must equal (a check, not a read)."""
        counts = {
            f"recounted_{status}": Count("cases", filter=Q(cases__status=status)) for status in Case.Status.values
        }
        return self.annotate(recounted_total=Count("cases"), **counts)


class Task(RevisedModel):
    revision_topic = TASKS

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=200, validators=[validate_one_line])
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="tasks")
    tool = models.ForeignKey(TestTool, on_delete=models.PROTECT, related_name="tasks")
    priority = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(0), MaxValueValidator(9)],
        help_text="0 (lowest) to 9 (highest): a higher-priority task's cases start first.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="testhub_tasks"
    )
    case_timeout = models.PositiveIntegerField(help_text="Seconds one case may run; the tool's timeout by default.")
    webhook_url = models.URLField(
        blank=True, max_length=500, help_text="Also tell this URL when the report is ready (besides the global one)."
    )
    template = models.ForeignKey("TaskTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Kept as its cases change, in the same transaction (execution.counts), so no list ever counts cases.
    cases_total = models.PositiveIntegerField(default=0)
    cases_queued = models.PositiveIntegerField(default=0)
    cases_running = models.PositiveIntegerField(default=0)
    cases_passed = models.PositiveIntegerField(default=0)
    cases_failed = models.PositiveIntegerField(default=0)
    cases_error = models.PositiveIntegerField(default=0)
    cases_cancelled = models.PositiveIntegerField(default=0)
    cases_timed = models.PositiveIntegerField(default=0, help_text="Ended cases that ran: started and finished.")
    cases_seconds = models.FloatField(default=0, help_text="Their durations, summed.")
    # The broker holds a window of each capability's cases, not whole tasks (execution.dispatch): how far this
    # task's chord has been handed out, in case order, and how many of its cases are still to go.
    # (Defaults in the database too: the benchmarks' history generator inserts tasks with SQL.)
    handed_out_through = models.BigIntegerField(
        default=0, db_default=0, help_text="The last case handed to the broker."
    )
    cases_handed_out = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Parts of the task's chord published."
    )
    cases_to_hand_out = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Queued cases not yet handed out."
    )

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # The task list's filters, each with the list's order (newest first by id), so a page is an index range.
        indexes = [
            models.Index(fields=["status", "-id"], name="task_status_recent"),
            models.Index(fields=["product", "-id"], name="task_product_recent"),
            models.Index(fields=["tool", "-id"], name="task_tool_recent"),
            models.Index(fields=["created_by", "-id"], name="task_creator_recent"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.name}"

    @property
    def cases_ended(self) -> int:
        return self.cases_passed + self.cases_failed + self.cases_error + self.cases_cancelled

    @property
    def progress(self) -> float:
        """Percent of cases that have ended."""
        return round(100 * self.cases_ended / self.cases_total, 1) if self.cases_total else 0.0

    @property
    def success_rate(self) -> float | None:
        """passed / (passed + failed) x 100, so far; None before a case has passed or failed."""
        judged = self.cases_passed + self.cases_failed
        return round(100 * self.cases_passed / judged, 2) if judged else None

    @property
    def shown_success_rate(self) -> float | None:
        """The report's rate once the task is reported (muted cases left out), else the rate so far. Load the report
        with the task (select_related) where many are shown."""
        report = getattr(self, "report", None)
        if report is not None and report.status == "ready":  # Report.Status.READY (reporting builds on this app)
            return float(report.success_rate) if report.success_rate is not None else None
        return self.success_rate

    @property
    def mean_case_seconds(self) -> float | None:
        return self.cases_seconds / self.cases_timed if self.cases_timed else None


class CaseQuerySet(RevisedQuerySet["Case"]):
    def insert_queued(self, *, task: "Task", names: list[str]) -> None:
        """Insert one queued case per name, fast: PostgreSQL's COPY, or bulk inserts elsewhere."""
        if connection.vendor != "postgresql":
            self.bulk_create([Case(task=task, name=name) for name in names], batch_size=5000)
            return
        columns = "task_id, name, status, attempts, log"
        with connection.cursor() as cursor, cursor.copy(f"COPY {Case._meta.db_table} ({columns}) FROM STDIN") as copy:
            for name in names:
                copy.write_row((task.pk, name, Case.Status.QUEUED, 0, ""))
        revisions_bump(TASKS)


class TaskTemplate(RevisedModel):
    """A task saved to run again: now, or on a cron schedule. Each run is an ordinary task."""

    revision_topic = TASKS
    name = models.CharField(max_length=200, unique=True, validators=[validate_one_line])
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="templates")
    tool = models.ForeignKey(TestTool, on_delete=models.PROTECT, related_name="templates")
    cases = models.JSONField(help_text="The case names, in order.")
    priority = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(0), MaxValueValidator(9)])
    case_timeout = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the tool's timeout.")
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text="Cron: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'. Empty: run by hand.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    last_run_error = models.CharField(
        max_length=1000, blank=True, help_text="Why the last scheduled run did not start."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Case(RevisedModel):
    revision_topic = TASKS

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINAL_STATUSES = (Status.PASSED, Status.FAILED, Status.ERROR, Status.CANCELLED)

    # Their lone indexes would be redundant with the composite ones below.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="cases", db_index=False)
    name = models.CharField(max_length=CASE_NAME_MAX_LENGTH)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases", db_index=False
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True)
    # A failed or errored case's cause, from its log as it was recorded (execution.signatures).
    failure = models.CharField(max_length=300, blank=True, db_default="", help_text="The first line of its failure.")
    signature = models.ForeignKey(
        "FailureSignature", null=True, blank=True, on_delete=models.SET_NULL, related_name="cases", db_index=False
    )

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "name"], name="case_task_name_unique")]
        # Every page of cases the API serves is a range of one of these: a task's cases in order, by status,
        # and a node's (by status: what it runs now). Searching by name uses a trigram index (PostgreSQL).
        indexes = [
            models.Index(fields=["task", "id"], name="case_task_order"),
            models.Index(fields=["task", "status", "id"], name="case_task_status"),
            models.Index(fields=["node", "status", "id"], name="case_node_status"),
            models.Index(fields=["status", "id"], name="case_status_order"),
            # A case's history across runs (by name, newest task first), and a failure's earlier runs.
            models.Index(fields=["name", "-task"], name="case_name_history"),
            models.Index(
                fields=["signature", "task"], name="case_signature_runs", condition=Q(signature__isnull=False)
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RejectedEvent(models.Model):
    """A worker event the recorder set aside: malformed, or refused by the database. Kept, with the reason,
    for a person to look at; the events around it were recorded."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    node = models.CharField(max_length=100, blank=True, help_text="The node the event claims to come from.")
    reason = models.TextField()
    payload = models.TextField(help_text="The event as received (its first 4,000 characters).")

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"event from {self.node or '?'} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class WebhookHost(models.Model):
    """A host that task webhooks may be sent to: the lab managers' allow-list (testers choose the URLs)."""

    host = models.CharField(
        max_length=253,
        unique=True,
        help_text="A host name (hooks.example.com), '*.example.com' for any name under example.com, or an IP address.",
    )
    allow_private = models.BooleanField(
        "allow private addresses",
        default=False,
        help_text="Also when it resolves to a private, loopback or link-local address (a service inside the lab). "
        "Off: such addresses are refused, so a webhook cannot reach internal services.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host"]
        verbose_name = "allowed webhook host"

    def __str__(self):
        return self.host


class TaskNodeCount(RevisedModel):
    """How many of a task's cases a node has, by status: kept with the task's own counts (execution.counts),
    so a task's per-node breakdown never groups its cases. By node name: it outlives the node."""

    revision_topic = TASKS
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="node_counts")
    node_name = models.CharField(max_length=63)
    status = models.CharField(max_length=20, choices=Case.Status.choices)
    cases = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "node_name", "status"], name="task_node_count_unique")]

    def __str__(self):
        return f"{self.task_id}/{self.node_name}/{self.status}: {self.cases}"


class ShareWeight(models.Model):
    """A user's or a group's share of the lab while several users wait for one capability (execution.scheduling):
    a user with weight 2 gets twice the slots of a user with 1. A user's own weight counts, else the highest of
    their groups', else 1."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="testhub_share"
    )
    group = models.OneToOneField(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="testhub_share"
    )
    weight = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="share_weight_user_or_group",
                violation_error_message="A share weight is for a user or for a group, not both.",
            )
        ]

    def __str__(self):
        return f"{self.user or self.group}: weight {self.weight}"


class FailureSignature(RevisedModel):
    """What failures of a product's cases (any version) under a tool have in common: their last error line and
    innermost stack frame, with what changes from run to run (numbers, addresses, paths, times, temporary names)
    taken out (execution.signatures). A tester's note or bug link on it shows on every failure that has it."""

    revision_topic = TASKS
    product_name = models.CharField(max_length=100)
    tool = models.ForeignKey(TestTool, on_delete=models.CASCADE, related_name="failure_signatures")
    digest = models.CharField(max_length=40, help_text="SHA-1 of the normalised error line and frame.")
    title = models.CharField(max_length=300, help_text="The normalised error line, and where it was raised.")
    note = models.TextField(blank=True, max_length=2000)
    bug_url = models.URLField("bug link", blank=True, max_length=500)
    noted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    noted_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["product_name", "tool", "digest"], name="failure_signature_unique")
        ]

    def __str__(self):
        return self.title


class CaseTrack(models.Model):
    """A case's recent outcomes on one product version with one tool, oldest first, one letter a run: P passed,
    R passed after a retry, F failed, E error. Kept as each task's report is built (execution.flaky), with what
    they say over the last TESTHUB_FLAKY_RUNS runs, so no request reads history to know a case is flaky."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="case_tracks", db_index=False)
    tool = models.ForeignKey(TestTool, on_delete=models.CASCADE, related_name="case_tracks")
    name = models.CharField(max_length=CASE_NAME_MAX_LENGTH)
    outcomes = models.CharField(max_length=100, help_text="Oldest first: P passed, R after a retry, F failed, E error.")
    last_task_id = models.BigIntegerField()
    runs = models.PositiveSmallIntegerField(help_text="Runs in the window (the last TESTHUB_FLAKY_RUNS).")
    flips = models.PositiveSmallIntegerField(help_text="Changes between passing and failing in the window.")
    flip_rate = models.FloatField(help_text="flips / (runs - 1).")
    flaky = models.BooleanField(help_text="In the window it both passed and failed, or passed only after a retry.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "tool", "name"], name="case_track_unique")]
        indexes = [
            models.Index(
                fields=["product", "tool", "-flip_rate", "name"], name="case_track_flaky", condition=Q(flaky=True)
            )
        ]

    def __str__(self):
        return f"{self.name} on {self.product_id}/{self.tool_id}: {self.outcomes}"


class MutedCase(RevisedModel):
    """A known flaky case a lab manager muted for a product (any version) and tool: it still runs and is recorded,
    is shown as muted, and is left out of the success rate (the report counts it beside the rate)."""

    revision_topic = TASKS
    product_name = models.CharField(max_length=100)
    tool = models.ForeignKey(TestTool, on_delete=models.CASCADE, related_name="muted_cases")
    name = models.CharField(max_length=CASE_NAME_MAX_LENGTH)
    note = models.CharField(max_length=500, blank=True, help_text="Why: a bug link, who is on it.")
    muted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    muted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product_name", "tool_id", "name"]
        constraints = [models.UniqueConstraint(fields=["product_name", "tool", "name"], name="muted_case_unique")]

    def __str__(self):
        return f"{self.name} ({self.product_name}, muted)"
