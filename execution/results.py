"""Reads that say what results mean: a case's history across runs, a task's failure groups, the marks (flaky,
muted) shown beside cases. Each is a few indexed reads, never a scan of history."""

from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from execution.models import Case, CaseTrack, FailureSignature, MutedCase, Task

GROUPS_SHOWN = 200
CASES_SHOWN_PER_GROUP = 5


def case_history(*, product_name: str, tool_id: int, name: str) -> QuerySet[Case]:
    """The case's runs on any version of the product with the tool, newest task first (a range of one index)."""
    return (
        Case.objects.filter(name=name, task__product__name=product_name, task__tool_id=tool_id)
        .select_related("task__product", "node")
        .only(
            *("id", "task_id", "name", "status", "node", "attempts", "exit_code", "started_at", "finished_at"),
            *("failure", "task__name", "task__product__name", "task__product__version", "task__rerun_of"),
            "node__name",
        )
        .order_by("-task_id")
    )


@dataclass(frozen=True)
class FailureGroup:
    signature: FailureSignature
    cases: int
    case_names: list[str]  # the first few, in case order
    earlier_runs: int  # earlier tasks in which it was seen
    first_task: int | None
    last_task: int | None


def failure_groups(*, task: Task) -> tuple[list[FailureGroup], int]:
    """The task's failed and errored cases by signature, biggest group first (at most GROUPS_SHOWN), and how many
    groups there are in all; each says where the same signature was seen before."""
    sized = list(
        Case.objects.filter(task=task, signature__isnull=False)
        .values("signature")
        .annotate(cases=Count("pk"))
        .order_by("-cases", "signature")
    )
    shown = sized[:GROUPS_SHOWN]
    ids = [row["signature"] for row in shown]
    signatures = FailureSignature.objects.select_related("noted_by").in_bulk(ids)
    earlier = {
        row["signature"]: row
        for row in Case.objects.filter(signature__in=ids, task_id__lt=task.pk)
        .values("signature")
        .annotate(runs=Count("task", distinct=True), first=Min("task"), last=Max("task"))
    }
    first_names: dict[int, list[str]] = {signature_id: [] for signature_id in ids}
    numbered = (
        Case.objects.filter(task=task, signature__in=ids)
        .annotate(place=Window(RowNumber(), partition_by=F("signature"), order_by=F("id").asc()))
        .filter(place__lte=CASES_SHOWN_PER_GROUP)
        .order_by("signature", "id")
        .values_list("signature", "name")
    )
    for signature_id, name in numbered:
        first_names[signature_id].append(name)
    groups = []
    for row in shown:
        signature_id = row["signature"]
        seen = earlier.get(signature_id)
        groups.append(
            FailureGroup(
                signature=signatures[signature_id],
                cases=row["cases"],
                case_names=first_names[signature_id],
                earlier_runs=seen["runs"] if seen else 0,
                first_task=seen["first"] if seen else None,
                last_task=seen["last"] if seen else None,
            )
        )
    return groups, len(sized)


def case_marks(cases: list[Case], *, task: Task | None = None) -> dict[int, tuple[bool, bool]]:
    """(flaky, muted) by case id: two indexed reads for a page of one task's cases (give the task, its product
    loaded), three for cases of any tasks."""
    if task is not None:
        scopes = {task.pk: (task.product_id, task.product.name, task.tool_id)}
    else:
        scopes = {
            pk: (product_id, product_name, tool_id)
            for pk, product_id, product_name, tool_id in Task.objects.filter(
                pk__in={case.task_id for case in cases}
            ).values_list("pk", "product_id", "product__name", "tool_id")
        }
    flaky_wanted, muted_wanted = Q(pk__in=[]), Q(pk__in=[])
    for scope in set(scopes.values()):
        product_id, product_name, tool_id = scope
        names = [case.name for case in cases if scopes[case.task_id] == scope]
        flaky_wanted |= Q(product_id=product_id, tool_id=tool_id, name__in=names)
        muted_wanted |= Q(product_name=product_name, tool_id=tool_id, name__in=names)
    flaky = set(CaseTrack.objects.filter(flaky_wanted, flaky=True).values_list("product_id", "tool_id", "name"))
    muted = set(MutedCase.objects.filter(muted_wanted).values_list("product_name", "tool_id", "name"))
    marks = {}
    for case in cases:
        product_id, product_name, tool_id = scopes[case.task_id]
        marks[case.pk] = ((product_id, tool_id, case.name) in flaky, (product_name, tool_id, case.name) in muted)
    return marks
