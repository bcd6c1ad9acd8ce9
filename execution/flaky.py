"""Which cases are flaky: each case's recent outcomes on a product version and tool (CaseTrack), kept once per
task as its report is built, in one statement, so knowing a case is flaky never reads its history.

A case is flaky when, within its last TESTHUB_FLAKY_RUNS runs on that product version and tool, it both passed
and failed (an error counts as failing), or it passed only after a retry (its first machine could not run it).
Flip rate: the changes between passing and failing in that window over (runs - 1).
"""

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


def case_tracks_update(*, task: Task) -> None:
    """Add the task's ended cases' outcomes (passed, failed, error) to their tracks on its product version and
    tool; a task already added changes nothing (its report build may be repeated)."""
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
