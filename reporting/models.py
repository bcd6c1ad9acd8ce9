from django.db import models

from execution.models import Task
from messaging.revisions import TASKS, RevisedModel


class Report(RevisedModel):
    revision_topic = TASKS

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="report")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.BUILDING, db_index=True)
    cancelled = models.BooleanField(default=False, help_text="The task was cancelled before all its cases ran.")
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    not_run = models.PositiveIntegerField(default=0, help_text="Cases cancelled before they ran.")
    muted = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Cases that ran while muted: left out of the success rate, counted here."
    )
    flaky_failures = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Failed or errored cases known to be flaky."
    )
    compared_with = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The earlier full run the changes are counted against.",
    )  # fmt: skip
    new_failures = models.PositiveIntegerField(default=0, db_default=0, help_text="Passed in that run, fail now.")
    fixed = models.PositiveIntegerField(default=0, db_default=0, help_text="Failed in that run, pass now.")
    success_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="passed / (passed + failed) x 100, muted cases left out; errors and cases that never ran are "
        "counted apart.",
    )
    duration_seconds = models.FloatField(null=True, blank=True)
    by_node = models.JSONField(default=list, blank=True, help_text="Per node: name, passed, failed, errors, total.")
    file = models.FileField(upload_to="reports/%Y/%m/", blank=True, max_length=300)
    build_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the build under way claimed the report (a dead build's is retaken)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Report for {self.task}"

    def tally(self) -> dict:
        """What a summary of the report shows (webhooks, the dashboard): its id, whether cancelled, its counts."""
        return {
            "id": self.pk,
            "cancelled": self.cancelled,
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "not_run": self.not_run,
        }
