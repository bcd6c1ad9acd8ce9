"""What changed between two runs: a task's cases joined by name with another task's, in one statement on
PostgreSQL (a hash join: two 100,000-case tasks in well under a second).

By default a task is compared with the latest earlier finished full run (not a rerun, not cancelled) of the same
product name and tool, whatever its version; two versions of a product are compared by their latest full runs.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from catalog.models import Product, TestTool
from execution.models import Case, Task

# In the order a person reads them: what broke first.
CHANGES = ("new_failures", "fixed", "still_failing", "new_cases", "removed_cases", "slower", "faster")
_FAILING = "('failed', 'error')"


@dataclass(frozen=True)
class Changed:
    name: str
    change: str
    case: int | None  # in the task compared
    status: str | None
    seconds: float | None
    before_case: int | None  # in the run it is compared with
    before_status: str | None
    before_seconds: float | None


def comparison_base(*, task: Task) -> Task | None:
    """The latest full run of the task's product name and tool that finished before it was submitted."""
    return (
        full_runs(product_name=task.product.name, tool_id=task.tool_id)
        .filter(pk__lt=task.pk)
        .select_related("product", "tool")
        .first()
    )


def full_runs(*, product_name: str, tool_id: int):
    """Finished full runs (every case of the task ran: not a rerun of some, not cancelled), newest first."""
    return Task.objects.filter(
        product__name=product_name, tool_id=tool_id, status=Task.Status.FINISHED, rerun_of__isnull=True
    ).order_by("-pk")


def latest_full_run(*, product: Product, tool: TestTool) -> Task | None:
    return (
        Task.objects.filter(product=product, tool=tool, status=Task.Status.FINISHED, rerun_of__isnull=True)
        .select_related("product", "tool")
        .order_by("-pk")
        .first()
    )


def _seconds() -> str:
    """A case's duration in seconds, in this database's SQL (the embedded default is SQLite)."""
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM finished_at - started_at)::float"
    return "(julianday(finished_at) - julianday(started_at)) * 86400.0"


def _joined() -> str:
    """Each case name of either task once, with its change (NULL: nothing worth saying)."""
    table = Case._meta.db_table
    factor, margin = settings.TESTHUB_DURATION_OUTLIER_FACTOR, settings.TESTHUB_DURATION_OUTLIER_SECONDS
    one_task = f"""SELECT id, name, status, {_seconds()} AS seconds
                   FROM {table} WHERE task_id = %(task)s AND status <> 'cancelled'"""  # noqa: S608
    before = one_task.replace("%(task)s", "%(before)s")
    return f"""
        SELECT COALESCE(a.name, b.name) AS name, a.id AS case_id, a.status, a.seconds,
               b.id AS before_case, b.status AS before_status, b.seconds AS before_seconds,
               CASE
                 WHEN b.id IS NULL THEN 'new_cases'
                 WHEN a.id IS NULL THEN 'removed_cases'
                 WHEN a.status IN {_FAILING} AND b.status = 'passed' THEN 'new_failures'
                 WHEN a.status = 'passed' AND b.status IN {_FAILING} THEN 'fixed'
                 WHEN a.status IN {_FAILING} AND b.status IN {_FAILING} THEN 'still_failing'
                 WHEN a.seconds >= {factor} * b.seconds AND a.seconds - b.seconds >= {margin} THEN 'slower'
                 WHEN b.seconds >= {factor} * a.seconds AND b.seconds - a.seconds >= {margin} THEN 'faster'
               END AS change
        FROM ({one_task}) a FULL JOIN ({before}) b ON a.name = b.name
    """  # noqa: S608 (our table, our settings; the ids are parameters)


def change_counts(*, task_id: int, before_id: int) -> dict[str, int]:
    """How many cases each change has (every change named, 0 when none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT change, count(*) FROM ({_joined()}) j WHERE change IS NOT NULL GROUP BY change",  # noqa: S608
            {"task": task_id, "before": before_id},
        )
        counted = dict(cursor.fetchall())
    return {change: counted.get(change, 0) for change in CHANGES}


def changed_cases(
    *,
    task_id: int,
    before_id: int,
    change: str | None = None,
    after: str = "",
    limit: int | None = None,
    most_per_change: int | None = None,
) -> Iterator[Changed]:
    """The changed cases, by change (in CHANGES order) then name; of one change only, after the name `after`,
    at most `limit`, when given (a page); at most `most_per_change` of each change, when given."""
    order = "CASE change " + " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(CHANGES)) + " END"
    where = ["change IS NOT NULL"]
    params: dict[str, int | str] = {"task": task_id, "before": before_id}
    if change is not None:
        where.append("change = %(change)s AND name > %(after)s")
        params.update(change=change, after=after)
    place = "row_number() OVER (PARTITION BY change ORDER BY name) AS place" if most_per_change else "0 AS place"
    if most_per_change:
        where.append(f"place <= {int(most_per_change)}")
    columns = "name, case_id, status, seconds, before_case, before_status, before_seconds, change"
    sql = (
        f"SELECT {columns} FROM (SELECT *, {place} FROM ({_joined()}) j WHERE change IS NOT NULL) k "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY {order}, name"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(5000):
            for name, case_id, status, seconds, before_case, before_status, before_seconds, changed in rows:
                yield Changed(name, changed, case_id, status, seconds, before_case, before_status, before_seconds)
