"""A task's case counts, kept on its row as its cases change: in the same transaction as the change, so a list
never counts cases, and a crash never leaves counts and cases apart.

Every write that changes case statuses goes through `cases_move` (bulk changes) or a `CountChanges` the writer
fills (the recorder, which knows each case's status before and after a batch). `task_counts_repair` recounts
from the case rows: the reconciler runs it on open tasks and says when it had to fix anything.
"""

import logging
from collections import Counter, defaultdict
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, QuerySet

from execution.models import Case, Task, TaskNodeCount
from messaging.revisions import TASKS, revisions_bump

logger = logging.getLogger(__name__)

COUNTED = [f"cases_{status}" for status in Case.Status.values]


class CountChanges:
    """Count changes for several tasks (and their nodes), written in one statement per task, in task id order (so
    two writers never wait on each other's rows in a cycle)."""

    def __init__(self):
        self.deltas: dict[int, Counter] = defaultdict(Counter)
        self.node_deltas: Counter = Counter()  # (task id, node name, status) -> cases

    def move(
        self,
        task_id: int,
        *,
        from_status: str | None,
        to_status: str,
        number: int = 1,
        from_node: str | None = None,
        to_node: str | None = None,
    ) -> None:
        """`number` cases of the task went from one status (on a node, or none) to another (from None: new)."""
        if from_status != to_status:
            if from_status is None:
                self.deltas[task_id]["cases_total"] += number
            else:
                self.deltas[task_id][f"cases_{from_status}"] -= number
            self.deltas[task_id][f"cases_{to_status}"] += number
        if (from_status, from_node) != (to_status, to_node):
            if from_node:
                self.node_deltas[(task_id, from_node, from_status)] -= number
            if to_node:
                self.node_deltas[(task_id, to_node, to_status)] += number

    def timed(self, task_id: int, *, started_at: datetime | None, finished_at: datetime | None) -> None:
        """A case ended: its duration joins the task's, if it ran."""
        if started_at and finished_at:
            self.deltas[task_id]["cases_timed"] += 1
            self.deltas[task_id]["cases_seconds"] += max((finished_at - started_at).total_seconds(), 0)

    def save(self) -> None:
        table = Task._meta.db_table
        with connection.cursor() as cursor:
            for task_id in sorted(self.deltas):
                changes = {field: delta for field, delta in self.deltas[task_id].items() if delta}
                if changes:
                    assignments = ", ".join(f"{field} = {field} + %s" for field in changes)
                    cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*changes.values(), task_id])  # noqa: S608
            node_rows = [(*key, delta) for key, delta in sorted(self.node_deltas.items()) if delta]
            if node_rows:
                node_table = TaskNodeCount._meta.db_table
                upsert = (
                    f"INSERT INTO {node_table} (task_id, node_name, status, cases) VALUES (%s, %s, %s, %s) "  # noqa: S608
                    "ON CONFLICT (task_id, node_name, status) "
                    f"DO UPDATE SET cases = {node_table}.cases + excluded.cases"
                )
                cursor.executemany(upsert, node_rows)
        if self.deltas or self.node_deltas:
            revisions_bump(TASKS)
        self.deltas.clear()
        self.node_deltas.clear()


def cases_move(cases: QuerySet, *, to: str, **fields) -> list[int]:
    """Set these cases' status to `to` (and `fields`), with their tasks' counts, in one transaction; returns
    the ids of the cases changed. Cases already in `to` are left as they are."""
    with transaction.atomic():
        rows = list(
            cases.exclude(status=to)
            .select_for_update(of=("self",))
            .order_by("pk")
            .values_list("pk", "task_id", "status")
        )
        if not rows:
            return []
        changes = CountChanges()
        for (task_id, status), number in Counter((task_id, status) for _, task_id, status in rows).items():
            changes.move(task_id, from_status=status, to_status=to, number=number)
        ids = [pk for pk, _, _ in rows]
        for start in range(0, len(ids), 10_000):
            Case.objects.filter(pk__in=ids[start : start + 10_000]).update(status=to, **fields)
        changes.save()
    return ids


def task_counts_repair(*, task_ids: list[int]) -> list[int]:
    """Recount these tasks' cases; where the kept counts (the task's, or its nodes') differ, fix them and say so.
    Returns the tasks fixed."""
    fixed = []
    for task in Task.objects.filter(pk__in=task_ids).with_recounted_cases().order_by("pk"):
        kept = {field: getattr(task, field) for field in ["cases_total", *COUNTED]}
        recounted = {field: getattr(task, field.replace("cases_", "recounted_")) for field in kept}
        kept_nodes, recounted_nodes = task_node_counts(task.pk), task_node_recount(task.pk)
        if kept != recounted or kept_nodes != recounted_nodes:
            logger.warning(
                "task %s: kept case counts %s %s drifted from the cases %s %s; fixed",
                task.pk, kept, kept_nodes, recounted, recounted_nodes,
            )  # fmt: skip
            with transaction.atomic():
                Task.objects.filter(pk=task.pk).update(**recounted)
                TaskNodeCount.objects.filter(task_id=task.pk).delete()
                TaskNodeCount.objects.bulk_create(
                    TaskNodeCount(task_id=task.pk, node_name=node, status=status, cases=number)
                    for (node, status), number in recounted_nodes.items()
                )
            fixed.append(task.pk)
    return fixed


def task_node_counts(task_id: int) -> dict[tuple[str, str], int]:
    """The task's kept cases per (node, status), leaving out what is zero."""
    rows = TaskNodeCount.objects.filter(task_id=task_id).exclude(cases=0).values_list("node_name", "status", "cases")
    return {(node, status): number for node, status, number in rows}


def task_node_recount(task_id: int) -> dict[tuple[str, str], int]:
    rows = (
        Case.objects.filter(task_id=task_id, node__isnull=False)
        .values_list("node__name", "status")
        .annotate(number=Count("pk"))
        .order_by()
    )
    return {(node, status): number for node, status, number in rows}
