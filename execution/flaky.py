"""Which cases are flaky: each case's recent outcomes on a product version and tool (CaseTrack), kept once per
task as its report is built, in one statement, so knowing a case is flaky never reads its history.

A case is flaky when, within its last TESTHUB_FLAKY_RUNS runs on that product version and tool, it both passed
and failed (an error counts as failing), or it passed only after a retry (its first machine could not run it).
Flip rate: the changes between passing and failing in that window over (runs - 1).
"""

from dataclasses import dataclass
from itertools import pairwise

from django.conf import settings
from django.db import connection

from execution.models import Case, CaseTrack, Task

# One letter a run, oldest first (CaseTrack.outcomes holds the last 100).
_OUTCOME = """CASE WHEN c.status = 'passed' AND c.attempts > 1 THEN 'R' WHEN c.status = 'passed' THEN 'P'
    WHEN c.status = 'failed' THEN 'F' ELSE 'E' END"""
_KEPT = 100


def _judged(outcomes: str, window: int) -> dict[str, str]:
    """SQL for what the last `window` letters of the outcomes expression say (runs, flips, flip rate, flaky)."""
    last = f"right({outcomes}, {window})"
    passing_or_failing = f"translate({last}, 'RE', 'PF')"
    # "PF" cannot overlap another "PF" (nor "FP" another "FP"), so counting what replace() removes counts each.
    flips = (
        f"((length({passing_or_failing}) - length(replace({passing_or_failing}, 'PF', ''))) / 2"
        f" + (length({passing_or_failing}) - length(replace({passing_or_failing}, 'FP', ''))) / 2)"
    )
    return {
        "runs": f"length({last})",
        "flips": flips,
        "flip_rate": f"({flips})::float / greatest(length({last}) - 1, 1)",
        "flaky": f"({last} LIKE '%%R%%' OR ({last} ~ '[PR]' AND {last} ~ '[FE]'))",
    }


@dataclass(frozen=True)
class Judged:
    runs: int
    flips: int
    flip_rate: float
    flaky: bool


def judged(outcomes: str, window: int) -> Judged:
    """What the last `window` outcomes say: the rule _judged writes in SQL, in Python (the two are tested equal)."""
    last = outcomes[-window:]
    passing = ["P" if outcome in "PR" else "F" for outcome in last]
    flips = sum(1 for before, after in pairwise(passing) if before != after)
    flaky = "R" in last or ("P" in passing and "F" in passing)
    return Judged(runs=len(last), flips=flips, flip_rate=flips / max(len(last) - 1, 1), flaky=flaky)


def _outcome(status: str, attempts: int) -> str:
    if status == Case.Status.PASSED:
        return "R" if attempts > 1 else "P"
    return "F" if status == Case.Status.FAILED else "E"


def case_tracks_update(*, task: Task) -> None:
    """Add the task's ended cases' outcomes (passed, failed, error) to their tracks on its product version and
    tool; a task already added changes nothing (its report build may be repeated)."""
    if connection.vendor != "postgresql":
        _case_tracks_update_in_python(task)
        return
    window = settings.TESTHUB_FLAKY_RUNS
    table, case_table = CaseTrack._meta.db_table, Case._meta.db_table
    merged_outcomes = f"right(track.outcomes || excluded.outcomes, {_KEPT})"
    merged = _judged(merged_outcomes, window)
    sql = f"""
        INSERT INTO {table} AS track (product_id, tool_id, name, outcomes, last_task_id, runs, flips, flip_rate, flaky)
        SELECT %(product)s, %(tool)s, c.name, {_OUTCOME}, %(task)s,
               1, 0, 0, c.status = 'passed' AND c.attempts > 1  -- a first run: flaky only if it needed a retry
        FROM {case_table} c
        WHERE c.task_id = %(task)s AND c.status IN ('passed', 'failed', 'error')
        ORDER BY c.name
        ON CONFLICT (product_id, tool_id, name) DO UPDATE SET
            outcomes = {merged_outcomes}, last_task_id = excluded.last_task_id, runs = {merged["runs"]},
            flips = {merged["flips"]}, flip_rate = {merged["flip_rate"]}, flaky = {merged["flaky"]}
        WHERE track.last_task_id <> excluded.last_task_id
    """  # noqa: S608 (table names and the window are ours; the values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"product": task.product_id, "tool": task.tool_id, "task": task.pk})


def _case_tracks_update_in_python(task: Task) -> None:
    """The same, a row at a time: for the embedded default (SQLite), whose labs are small."""
    ended = Case.objects.filter(task=task, status__in=[Case.Status.PASSED, Case.Status.FAILED, Case.Status.ERROR])
    outcomes = {
        name: _outcome(status, attempts) for name, status, attempts in ended.values_list("name", "status", "attempts")
    }
    tracks = CaseTrack.objects.filter(product_id=task.product_id, tool_id=task.tool_id, name__in=list(outcomes))
    known = {track.name: track for track in tracks}
    changed = []
    for name, outcome in sorted(outcomes.items()):
        track = known.get(name) or CaseTrack(product_id=task.product_id, tool_id=task.tool_id, name=name, outcomes="")
        if track.last_task_id == task.pk:
            continue
        track.outcomes, track.last_task_id = (track.outcomes + outcome)[-_KEPT:], task.pk
        seen = judged(track.outcomes, settings.TESTHUB_FLAKY_RUNS)
        track.runs, track.flips, track.flip_rate, track.flaky = seen.runs, seen.flips, seen.flip_rate, seen.flaky
        changed.append(track)
    CaseTrack.objects.bulk_create(
        changed,
        update_conflicts=True,
        unique_fields=["product", "tool", "name"],
        update_fields=["outcomes", "last_task_id", "runs", "flips", "flip_rate", "flaky"],
        batch_size=500,
    )
