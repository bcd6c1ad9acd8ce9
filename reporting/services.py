import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Avg, Count, F, Max, Min, Q, QuerySet
from django.utils import timezone

from catalog.models import ProductTestResult
from catalog.services import product_test_result_record
from execution.counts import task_counts_repair
from execution.models import Case, Task
from reporting.models import Report
from reporting.tasks import send_webhook
from reporting.webhooks import webhook_targets
from reporting.xlsx import write_workbook

logger = logging.getLogger(__name__)

SUCCESS_RATE_FORMULA = (
    "success rate = passed / (passed + failed) x 100. Errors (a timeout, or a machine that could not run "
    "the case after every retry) and cases cancelled before they ran are counted on their own and left out."
)


def success_rate(*, passed: int, failed: int) -> Decimal | None:
    judged = passed + failed
    return (Decimal(100) * passed / judged).quantize(Decimal("0.01")) if judged else None


def _counts(cases: QuerySet[Case]) -> dict[str, int]:
    return cases.aggregate(
        total=Count("pk"),
        passed=Count("pk", filter=Q(status=Case.Status.PASSED)),
        failed=Count("pk", filter=Q(status=Case.Status.FAILED)),
        errors=Count("pk", filter=Q(status=Case.Status.ERROR)),
        not_run=Count("pk", filter=Q(status=Case.Status.CANCELLED)),
    )


class NodeSummary(TypedDict):
    """One node's line in a report (Report.by_node, stored as JSON)."""

    node: str
    total: int
    passed: int
    failed: int
    errors: int
    success_rate: float | None
    mean_duration: float | None


def _by_node(cases: QuerySet[Case]) -> list[NodeSummary]:
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


def _node_summary(row: Mapping[str, Any]) -> NodeSummary:
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


# A build that claimed a report this long ago and has not finished died with its worker: another may take it.
BUILD_ABANDONED_AFTER = timedelta(minutes=10)


@dataclass
class _Figures:
    counts: dict[str, int]
    started: datetime | None
    finished: datetime
    cancelled: bool

    @property
    def duration(self) -> float | None:
        return (self.finished - self.started).total_seconds() if self.started else None


def report_build(*, task_id: int) -> Report | None:
    """Build the task's report once all its cases have ended, close the task and record the pass rate.

    Idempotent: a build claims the task's report row first (a redelivered or repeated call finds it claimed or
    ready and returns it), writes the .xlsx holding no lock, then closes the task in one short transaction.
    Returns None while cases are still open (the recorder or the reconciler calls again when the last one ends).
    """
    task_counts_repair(task_ids=[task_id])  # the report says what the cases say; the kept counts must agree
    report, claimed = _report_claim(task_id=task_id)
    if not claimed or report is None:  # a claimed report is never None
        return report
    try:
        task = report.task
        cases = Case.objects.filter(task=task)
        figures = _figures(task, cases)
        report.by_node = _by_node(cases)
        _workbook_attach(report, task=task, cases=cases, figures=figures)
    except BaseException:
        Report.objects.filter(pk=report.pk, status=Report.Status.BUILDING).delete()  # let the next call build it
        raise
    return _report_finish(report, task=task, figures=figures)


def _report_claim(*, task_id: int) -> tuple[Report | None, bool]:
    """(report, True) when this call is to build it; (the report or None, False) when the task is already
    reported, its cases are still open, or another build under way holds it."""
    now = timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("product", "tool").get(pk=task_id)
        if task.status in (Task.Status.FINISHED, Task.Status.CANCELLED):
            return Report.objects.filter(task=task).first(), False
        if Case.objects.filter(task=task, status__in=Case.OPEN_STATUSES).exists():
            return None, False
        report, created = Report.objects.get_or_create(
            task=task, defaults={"status": Report.Status.BUILDING, "build_started_at": now}
        )
        if not created:
            retaken = Report.objects.filter(
                pk=report.pk, status=Report.Status.BUILDING, build_started_at__lt=now - BUILD_ABANDONED_AFTER
            ).update(build_started_at=now)
            if not retaken:
                return report, False
            report.build_started_at = now
    report.task = task
    return report, True


def _figures(task: Task, cases: QuerySet[Case]) -> _Figures:
    span = cases.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return _Figures(
        counts=_counts(cases),
        started=task.started_at or span["first"],
        finished=span["last"] or timezone.now(),
        cancelled=task.status == Task.Status.CANCELLING,
    )


def _workbook_attach(report: Report, *, task: Task, cases: QuerySet[Case], figures: _Figures) -> None:
    """Write the .xlsx and store it as the report's file (the row is saved when the build finishes)."""
    counts, rate = figures.counts, success_rate(passed=figures.counts["passed"], failed=figures.counts["failed"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"testhub-task-{task.pk}.xlsx"
        write_workbook(
            path,
            summary=[
                ("Task", f"#{task.pk} {task.name}"),
                ("Product", str(task.product)),
                ("Tool", str(task.tool)),
                ("Outcome", "cancelled" if figures.cancelled else "finished"),
                ("Cases", counts["total"]),
                ("Passed", counts["passed"]),
                ("Failed", counts["failed"]),
                ("Errors", counts["errors"]),
                ("Not run (cancelled)", counts["not_run"]),
                ("Success rate (%)", float(rate) if rate is not None else "n/a"),
                ("Formula", SUCCESS_RATE_FORMULA),
                ("Duration (s)", round(figures.duration, 3) if figures.duration is not None else None),
                ("Started (UTC)", figures.started),
                ("Finished (UTC)", figures.finished),
            ],
            counts=[(label, counts[key]) for key, label in _COUNT_LABELS],
            cases=cases.order_by("pk")
            .values_list("name", "status", "node__name", "started_at", "finished_at", "exit_code", "attempts")
            .iterator(chunk_size=5000),
            nodes=report.by_node,
        )
        with path.open("rb") as workbook:
            report.file.save(path.name, File(workbook), save=False)


def _report_finish(report: Report, *, task: Task, figures: _Figures) -> Report:
    """The report ready, the task closed, the product's pass rate recorded and webhooks queued, all at once."""
    counts = figures.counts
    report.status = Report.Status.READY
    report.cancelled = figures.cancelled
    for field, value in counts.items():
        setattr(report, field, value)
    report.success_rate = success_rate(passed=counts["passed"], failed=counts["failed"])
    report.duration_seconds = figures.duration
    with transaction.atomic():
        report.save()
        Task.objects.filter(pk=task.pk).update(
            status=Task.Status.CANCELLED if figures.cancelled else Task.Status.FINISHED, finished_at=figures.finished
        )
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
                kind=_result_kind(task, cancelled=figures.cancelled),
                task=task.pk,
            )
        for target in webhook_targets(report):
            # After commit, on the control worker, retried with backoff: a slow receiver never holds up a report.
            transaction.on_commit(partial(send_webhook.apply_async, (report.pk, target)))
    logger.info("task %s: report %s built (%s cases)", task.pk, report.pk, counts["total"])
    return report


def _result_kind(task: Task, *, cancelled: bool) -> str:
    if cancelled:
        return ProductTestResult.Kind.CANCELLED
    return ProductTestResult.Kind.RERUN if task.rerun_of_id else ProductTestResult.Kind.FULL


_COUNT_LABELS = [("passed", "passed"), ("failed", "failed"), ("errors", "error"), ("not_run", "cancelled")]
