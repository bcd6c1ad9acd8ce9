import logging
import tempfile
from decimal import Decimal
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Avg, Count, F, Max, Min, Q
from django.utils import timezone

from catalog.services import product_test_result_record
from execution.counts import task_counts_repair
from execution.models import Case, Task
from reporting.models import Report
from reporting.webhooks import webhook_targets
from reporting.xlsx import write_workbook
from worker.protocol import CONTROL_QUEUE

logger = logging.getLogger(__name__)

SUCCESS_RATE_FORMULA = (
    "success rate = passed / (passed + failed) x 100. Errors (a timeout, or a machine that could not run "
    "the case after every retry) and cases cancelled before they ran are counted on their own and left out."
)


def success_rate(*, passed: int, failed: int) -> Decimal | None:
    judged = passed + failed
    return (Decimal(100) * passed / judged).quantize(Decimal("0.01")) if judged else None


def _counts(cases) -> dict[str, int]:
    return cases.aggregate(
        total=Count("pk"),
        passed=Count("pk", filter=Q(status=Case.Status.PASSED)),
        failed=Count("pk", filter=Q(status=Case.Status.FAILED)),
        errors=Count("pk", filter=Q(status=Case.Status.ERROR)),
        not_run=Count("pk", filter=Q(status=Case.Status.CANCELLED)),
    )


def _by_node(cases) -> list[dict]:
    rows = (
        cases.filter(node__isnull=False)
        .values(node_name=F("node__name"))
        .annotate(
            total=Count("pk"),
            passed=Count("pk", filter=Q(status=Case.Status.PASSED)),
            failed=Count("pk", filter=Q(status=Case.Status.FAILED)),
            errors=Count("pk", filter=Q(status=Case.Status.ERROR)),
            mean=Avg(F("finished_at") - F("started_at")),
        )
        .order_by("node_name")
    )
    return [_node_summary(row) for row in rows]


def _node_summary(row: dict) -> dict:
    rate = success_rate(passed=row["passed"], failed=row["failed"])
    return {
        "node": row["node_name"],
        "total": row["total"],
        "passed": row["passed"],
        "failed": row["failed"],
        "errors": row["errors"],
        "success_rate": float(rate) if rate is not None else None,
        "mean_duration": round(row["mean"].total_seconds(), 3) if row["mean"] is not None else None,
    }


def report_build(*, task_id: int) -> Report | None:
    """Build the task's report once all its cases have ended, close the task and record the pass rate.

    Idempotent: the task row is locked while building, and a closed task already has its report, so a
    redelivered or repeated call returns it. Returns None while cases are still open (the recorder or
    the reconciler calls again when the last one ends).
    """
    task_counts_repair(task_ids=[task_id])  # the report says what the cases say; the kept counts must agree
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("product", "tool").get(pk=task_id)
        if task.status in (Task.Status.FINISHED, Task.Status.CANCELLED):
            return Report.objects.filter(task=task).first()
        cases = Case.objects.filter(task=task)
        if cases.filter(status__in=Case.OPEN_STATUSES).exists():
            return None
        counts = _counts(cases)
        span = cases.aggregate(first=Min("started_at"), last=Max("finished_at"))
        started, finished = task.started_at or span["first"], span["last"] or timezone.now()
        duration = (finished - started).total_seconds() if started else None
        cancelled = task.status == Task.Status.CANCELLING
        report = Report(
            task=task,
            status=Report.Status.READY,
            cancelled=cancelled,
            **counts,
            success_rate=success_rate(passed=counts["passed"], failed=counts["failed"]),
            duration_seconds=duration,
            by_node=_by_node(cases),
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"testhub-task-{task.pk}.xlsx"
            write_workbook(
                path,
                summary=[
                    ("Task", f"#{task.pk} {task.name}"),
                    ("Product", str(task.product)),
                    ("Tool", str(task.tool)),
                    ("Outcome", "cancelled" if cancelled else "finished"),
                    ("Cases", counts["total"]),
                    ("Passed", counts["passed"]),
                    ("Failed", counts["failed"]),
                    ("Errors", counts["errors"]),
                    ("Not run (cancelled)", counts["not_run"]),
                    ("Success rate (%)", float(report.success_rate) if report.success_rate is not None else "n/a"),
                    ("Formula", SUCCESS_RATE_FORMULA),
                    (
                        "Duration (s)",
                        round(duration, 3) if duration is not None else None,
                    ),
                    ("Started (UTC)", started),
                    ("Finished (UTC)", finished),
                ],
                counts=[(label, counts[key]) for key, label in _COUNT_LABELS],
                cases=cases.order_by("pk")
                .values_list("name", "status", "node__name", "started_at", "finished_at", "exit_code", "attempts")
                .iterator(chunk_size=5000),
                nodes=report.by_node,
            )
            with path.open("rb") as workbook:
                report.file.save(path.name, File(workbook), save=False)
        report.save()
        task.status = Task.Status.CANCELLED if cancelled else Task.Status.FINISHED
        task.finished_at = finished
        task.save(update_fields=["status", "finished_at"])
        if report.success_rate is not None:
            product_test_result_record(
                product=task.product,
                pass_rate=report.success_rate,
                source="testhub",
                total=counts["total"],
                passed=counts["passed"],
                failed=counts["failed"],
                errors=counts["errors"],
                report_url=f"{settings.TESTHUB_PUBLIC_URL}/api/reports/{report.pk}/download/",
            )
        for target in webhook_targets(report):
            # After commit, on the control worker, retried with backoff: a slow receiver never holds up a report.
            transaction.on_commit(lambda target=target: current_app.send_task(
                "reporting.send_webhook", args=(report.pk, target), queue=CONTROL_QUEUE
            ))  # fmt: skip
    logger.info("task %s: report %s built (%s cases)", task.pk, report.pk, counts["total"])
    return report


_COUNT_LABELS = [("passed", "passed"), ("failed", "failed"), ("errors", "error"), ("not_run", "cancelled")]
