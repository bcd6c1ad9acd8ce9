import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Avg, Count, Exists, F, Max, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from catalog.models import ProductTestResult
from catalog.services import product_test_result_record
from execution.comparison import change_counts, changed_cases, comparison_base
from execution.counts import task_counts_repair
from execution.flaky import case_tracks_update
from execution.models import Case, CaseTrack, MutedCase, Task
from execution.results import failure_groups
from reporting.models import Report
from reporting.tasks import send_webhook
from reporting.webhooks import webhook_targets
from reporting.xlsx import Table, write_workbook

logger = logging.getLogger(__name__)

SUCCESS_RATE_FORMULA = (
    "success rate = passed / (passed + failed) x 100, muted cases left out (counted beside it). Errors (a timeout, "
    "or a machine that could not run the case after every retry) and cases cancelled before they ran are counted "
    "on their own and left out."
)


def success_rate(*, passed: int, failed: int) -> Decimal | None:
    judged = passed + failed
    return (Decimal(100) * passed / judged).quantize(Decimal("0.01")) if judged else None


def _counts(task: Task, cases: QuerySet[Case]) -> dict[str, int]:
    """The cases by status, and what the success rate counts: those not muted for the product and tool."""
    muted = Q(name__in=MutedCase.objects.filter(product_name=task.product.name, tool=task.tool).values("name"))
    ran = Q(status__in=[Case.Status.PASSED, Case.Status.FAILED, Case.Status.ERROR])
    flaky = Q(
        name__in=CaseTrack.objects.filter(product=task.product, tool=task.tool, flaky=True).values("name"),
        status__in=[Case.Status.FAILED, Case.Status.ERROR],
    )
    return cases.aggregate(
        total=Count("pk"),
        passed=Count("pk", filter=Q(status=Case.Status.PASSED)),
        failed=Count("pk", filter=Q(status=Case.Status.FAILED)),
        errors=Count("pk", filter=Q(status=Case.Status.ERROR)),
        not_run=Count("pk", filter=Q(status=Case.Status.CANCELLED)),
        muted=Count("pk", filter=muted & ran),
        rated_passed=Count("pk", filter=Q(status=Case.Status.PASSED) & ~muted),
        rated_failed=Count("pk", filter=Q(status=Case.Status.FAILED) & ~muted),
        flaky_failures=Count("pk", filter=flaky),
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
    compared_with: Task | None
    changes: dict[str, int] | None

    @property
    def success_rate(self) -> Decimal | None:
        return success_rate(passed=self.counts["rated_passed"], failed=self.counts["rated_failed"])

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
        case_tracks_update(task=task)  # first: this run's flaky marks count this run
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
    base = comparison_base(task=task)
    return _Figures(
        counts=_counts(task, cases),
        started=task.started_at or span["first"],
        finished=span["last"] or timezone.now(),
        cancelled=task.status == Task.Status.CANCELLING,
        compared_with=base,
        changes=change_counts(task_id=task.pk, before_id=base.pk) if base else None,
    )


def _workbook_attach(report: Report, *, task: Task, cases: QuerySet[Case], figures: _Figures) -> None:
    """Write the .xlsx and store it as the report's file (the row is saved when the build finishes)."""
    counts, rate = figures.counts, figures.success_rate
    base = figures.compared_with
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"testhub-task-{task.pk}.xlsx"
        write_workbook(
            path,
            summary=[
                ("Task", f"#{task.pk} {task.name}"),
                ("Product", str(task.product)),
                ("Tool", str(task.tool)),
                ("Run", run_kind(task=task, cancelled=figures.cancelled)),
                ("Cases", counts["total"]),
                ("Passed", counts["passed"]),
                ("Failed", counts["failed"]),
                ("Errors", counts["errors"]),
                ("Not run (cancelled)", counts["not_run"]),
                ("Success rate (%)", float(rate) if rate is not None else "n/a"),
                ("Muted (left out of the rate)", counts["muted"]),
                ("Flaky failures", counts["flaky_failures"]),
                ("Formula", SUCCESS_RATE_FORMULA),
                ("Compared with", f"#{base.pk} {base.name} ({base.product})" if base else "no earlier full run"),
                *((_CHANGE_LABELS[change], count) for change, count in (figures.changes or {}).items()),
                ("Duration (s)", round(figures.duration, 3) if figures.duration is not None else None),
                ("Started (UTC)", figures.started),
                ("Finished (UTC)", figures.finished),
            ],
            counts=[(label, counts[key]) for key, label in _COUNT_LABELS],
            tables=[
                Table("Cases", _CASE_COLUMNS, _case_rows(task, cases)),
                Table("Nodes", _NODE_COLUMNS, ([row[key] for key in _NODE_KEYS] for row in report.by_node)),
                Table("Changes", _CHANGE_COLUMNS, _change_rows(task, base, counts=figures.changes or {})),
                Table("Flaky cases", _FLAKY_COLUMNS, _flaky_rows(task)),
                Table("Failure groups", _GROUP_COLUMNS, _group_rows(task)),
            ],
        )
        with path.open("rb") as workbook:
            report.file.save(path.name, File(workbook), save=False)


# Beyond this many cases of one change (a renamed suite is 100,000 "new cases"), the sheet says how many more.
CHANGES_LISTED = 5_000
_CASE_COLUMNS = [
    ("case", 60), ("status", 10), ("node", 16), ("started (UTC)", 20), ("finished (UTC)", 20), ("duration (s)", 12),
    ("exit code", 10), ("attempts", 9), ("failure", 60), ("failure group", 60), ("flaky", 7), ("muted", 7),
]  # fmt: skip
_NODE_KEYS = ("node", "total", "passed", "failed", "errors", "success_rate", "mean_duration")
_NODE_COLUMNS = [
    ("node", 20), ("total", 9), ("passed", 9), ("failed", 9), ("errors", 9), ("success rate (%)", 16),
    ("mean duration (s)", 18),
]  # fmt: skip
_CHANGE_LABELS = {
    "new_failures": "New failures", "fixed": "Fixed", "still_failing": "Still failing", "new_cases": "New cases",
    "removed_cases": "No longer run", "slower": "Far slower", "faster": "Far faster",
}  # fmt: skip
_CHANGE_COLUMNS = [
    ("case", 60), ("change", 16), ("status", 10), ("status before", 14), ("seconds", 10), ("seconds before", 15),
]  # fmt: skip
_FLAKY_COLUMNS = [
    ("case", 60), ("runs", 7), ("flips", 7), ("flip rate", 10), ("recent (oldest first)", 22), ("failed here", 12),
    ("muted", 7),
]  # fmt: skip
_GROUP_COLUMNS = [
    ("failure group", 70), ("cases", 8), ("earlier runs", 13), ("first seen in task", 18), ("note", 40),
    ("bug link", 40), ("first cases", 70),
]  # fmt: skip


def _case_rows(task: Task, cases: QuerySet[Case]) -> Iterator[tuple[object, ...]]:
    # The marks as two sets read once: a lookup per row of 100,000 costs more than the sheet's own writing.
    flaky = set(
        CaseTrack.objects.filter(
            product=task.product, tool=task.tool, flaky=True, name__in=Case.objects.filter(task=task).values("name")
        ).values_list("name", flat=True)
    )
    muted = set(MutedCase.objects.filter(product_name=task.product.name, tool=task.tool).values_list("name", flat=True))
    rows = (
        cases.order_by("pk")
        .values_list(
            *("name", "status", "node__name", "started_at", "finished_at", "exit_code", "attempts", "failure"),
            "signature__title",
        )
        .iterator(chunk_size=5000)
    )
    for name, status, node, started, finished, exit_code, attempts, failure, group in rows:
        duration = round((finished - started).total_seconds(), 3) if started and finished else None
        yield (
            name, status, node, started, finished, duration, exit_code, attempts, failure, group,
            "flaky" if name in flaky else None, "muted" if name in muted else None,
        )  # fmt: skip


def _change_rows(task: Task, base: Task | None, *, counts: dict[str, int]) -> Iterator[tuple[object, ...]]:
    """The changed cases by change, at most CHANGES_LISTED of each (the API pages through the rest); `counts`:
    how many each change has."""
    if base is None:
        return
    rows = changed_cases(task_id=task.pk, before_id=base.pk, most_per_change=CHANGES_LISTED)
    for change, changed in groupby(rows, key=lambda row: row.change):
        for row in changed:
            yield row.name, _CHANGE_LABELS[change], row.status, row.before_status, row.seconds, row.before_seconds
        if counts[change] > CHANGES_LISTED:
            more = counts[change] - CHANGES_LISTED
            yield f"... and {more} more: GET /api/tasks/{task.pk}/compare/?change={change}", _CHANGE_LABELS[change]


def _flaky_rows(task: Task) -> Iterator[tuple[object, ...]]:
    """The task's cases that are flaky on its product version and tool."""
    names = Case.objects.filter(task=task).values("name")
    failed_here = Case.objects.filter(
        task=task, name=OuterRef("name"), status__in=[Case.Status.FAILED, Case.Status.ERROR]
    )
    muted = MutedCase.objects.filter(product_name=task.product.name, tool=task.tool, name=OuterRef("name"))
    tracks = (
        CaseTrack.objects.filter(product=task.product, tool=task.tool, flaky=True, name__in=names)
        .annotate(failed_here=Exists(failed_here), muted=Exists(muted))
        .order_by("-flip_rate", "name")
    )
    for track in tracks.iterator(chunk_size=5000):
        yield (
            track.name, track.runs, track.flips, round(track.flip_rate, 3), track.outcomes[-track.runs :],
            "yes" if track.failed_here else None, "muted" if track.muted else None,
        )  # fmt: skip


def _group_rows(task: Task) -> Iterator[tuple[object, ...]]:
    groups, _ = failure_groups(task=task)
    for group in groups:
        signature = group.signature
        yield (
            signature.title, group.cases, group.earlier_runs, group.first_task, signature.note, signature.bug_url,
            "\n".join(group.case_names),
        )  # fmt: skip


def _report_finish(report: Report, *, task: Task, figures: _Figures) -> Report:
    """The report ready, the task closed, the product's pass rate recorded and webhooks queued, all at once."""
    counts = figures.counts
    report.status = Report.Status.READY
    report.cancelled = figures.cancelled
    for field in ("total", "passed", "failed", "errors", "not_run", "muted", "flaky_failures"):
        setattr(report, field, counts[field])
    report.success_rate = figures.success_rate
    report.duration_seconds = figures.duration
    report.compared_with = figures.compared_with
    changes = figures.changes or {}
    report.new_failures, report.fixed = changes.get("new_failures", 0), changes.get("fixed", 0)
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


def run_kind(*, task: Task, cancelled: bool) -> str:
    """What kind of run a report speaks for, in words: only a full run is the product's pass rate."""
    if cancelled:
        return "cancelled before every case ran: not the product's pass rate"
    if task.rerun_of_id:
        return f"rerun of some cases of task #{task.rerun_of_id}: not the product's pass rate"
    return "full run"


def _result_kind(task: Task, *, cancelled: bool) -> str:
    if cancelled:
        return ProductTestResult.Kind.CANCELLED
    return ProductTestResult.Kind.RERUN if task.rerun_of_id else ProductTestResult.Kind.FULL


_COUNT_LABELS = [("passed", "passed"), ("failed", "failed"), ("errors", "error"), ("not_run", "cancelled")]
