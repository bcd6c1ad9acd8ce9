"""Reads that need care: why a task waits, and for how long."""

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from execution.models import Case, Task
from execution.scheduling import aged_priority
from messaging import broker
from nodes.capabilities import capability_queue
from nodes.models import InstallState, Node, NodeTool

RECENT_TASKS_TIMED = 20  # the tasks whose case durations make the ETA


def task_waiting(task: Task) -> dict | None:
    """Why the task's queued cases wait, where they stand and when they should run; None when none waits.

    `ahead`: cases that start before this task's next one: those waiting in the capability's queue, those of
    tasks that outrank it (a higher priority, after aging) and one per other user taking turns at its priority.
    The ETAs divide cases by the capable slots, at the capability's recent mean case duration."""
    if task.status not in (Task.Status.QUEUED, Task.Status.RUNNING) or not task.cases_queued:
        return None
    queue = capability_queue(product=task.product, tool=task.tool)
    nodes = _capable_nodes(task)
    online = [node for node in nodes if node["usable"]]
    slots = sum(node["slots"] for node in online)
    in_queue = _queue_depth(queue)
    outranking, turns = _ahead_of(task)
    ahead = in_queue + outranking + turns
    seconds = capability_mean_case_seconds(product_id=task.product_id, tool_id=task.tool_id)
    starts, finishes = None, None
    if slots and seconds is not None:
        starts = round(ahead * seconds / slots)
        # Its cases share the slots with the users taking turns beside it.
        finishes = round((ahead + task.cases_queued * (1 + turns)) * seconds / slots)
    return {
        "queue": queue,
        "ahead": ahead,
        "ahead_in_queue": in_queue,
        "ahead_outranking": outranking,
        "ahead_taking_turns": turns,
        "capable_slots": slots,
        "mean_case_seconds": None if seconds is None else round(seconds, 2),
        "starts_in_seconds": starts,
        "finishes_in_seconds": finishes,
        "reason": _reason(task, nodes, online),
        "nodes": nodes,
    }


def _queue_depth(queue: str) -> int:
    try:
        return broker.queue_depths([queue])[queue]
    except Exception:  # the broker is away: the rest of the answer still holds
        return 0


def _ahead_of(task: Task) -> tuple[int, int]:
    """Cases of tasks that outrank `task` still to hand out, and how many other users take turns beside it."""
    now, aging = timezone.now(), settings.TESTHUB_PRIORITY_AGING_SECONDS
    mine = aged_priority(priority=task.priority, created_at=task.created_at, now=now, aging_seconds=aging)
    outranking, users_beside = 0, set()
    others = Task.objects.filter(
        product_id=task.product_id, tool_id=task.tool_id, status__in=[Task.Status.QUEUED, Task.Status.RUNNING]
    ).exclude(pk=task.pk)
    fields = ["priority", "created_at", "created_by_id", "dispatched_at", "cases_to_hand_out", "cases_queued"]
    for other in others.only(*fields):
        theirs = aged_priority(priority=other.priority, created_at=other.created_at, now=now, aging_seconds=aging)
        if theirs > mine:
            outranking += other.cases_to_hand_out if other.dispatched_at else other.cases_queued
        elif theirs == mine and other.created_by_id != task.created_by_id and other.cases_queued:
            users_beside.add(other.created_by_id)
    return outranking, len(users_beside)


def capability_mean_case_seconds(*, product_id: int, tool_id: int) -> float | None:
    """How long a case of this product and tool has taken lately (the recent tasks' kept sums); None before any."""
    recent = Task.objects.filter(product_id=product_id, tool_id=tool_id, cases_timed__gt=0).order_by("-id")
    timed = list(recent.values_list("cases_seconds", "cases_timed")[:RECENT_TASKS_TIMED])
    cases = sum(count for _, count in timed)
    return sum(seconds for seconds, _ in timed) / cases if cases else None


def _capable_nodes(task: Task) -> list[dict]:
    """Every node with the task's product and tool, installed or not, with what it runs now."""
    rows = (
        Node.objects.filter(installs__product=task.product, installs__tools__tool=task.tool)
        .annotate(online=Exists(Node.objects.online().filter(pk=OuterRef("pk"))))
        .order_by("name")
        .values_list("pk", "name", "status", "status_reason", "slots", "online", "installs__state",
                     "installs__tools__state")
    )  # fmt: skip
    nodes: dict[int, dict] = {}
    for pk, name, status, reason, slots, online, product_state, tool_state in rows:
        installed = product_state == tool_state == InstallState.INSTALLED
        nodes[pk] = {"name": name, "status": status, "status_reason": reason, "installed": installed, "slots": slots,
                     "usable": installed and online, "running": []}  # fmt: skip
    busy = (
        Case.objects.filter(node__in=list(nodes), status=Case.Status.RUNNING)
        .values("node_id", "task_id", "task__name")
        .annotate(cases=Count("pk"))
        .order_by("node_id", "task_id")
    )
    for row in busy:
        nodes[row["node_id"]]["running"].append(
            {"task": row["task_id"], "task_name": row["task__name"], "cases": row["cases"]}
        )
    return list(nodes.values())


def _reason(task: Task, nodes: list[dict], online: list[dict]) -> str:
    """In a sentence, why the task's cases wait."""
    if not nodes:
        return "No node has this product and tool installed: a lab manager must install them on one."
    if not online:
        states = "; ".join(_unusable(node) for node in nodes)
        return f"No capable node is online to run its cases ({states})."
    if task.cases_running:
        return "Its cases run as slots free up, taking turns with other users' tasks on the same nodes."
    return "Its cases wait for a free slot on the capable nodes, which are busy."


def _unusable(node: dict) -> str:
    if not node["installed"]:
        return f"{node['name']}: the install is not ready or failed"
    why = f": {node['status_reason']}" if node["status_reason"] else ""
    return f"{node['name']} is {node['status']}{why}"


def capability_queues_in_use() -> list[str]:
    """Every capability queue a node has installed or an unfinished task waits on: what Flower and /metrics show."""
    pairs = {
        (install.node_product.product, install.tool)
        for install in NodeTool.objects.select_related("node_product__product", "tool")
    }
    pairs |= {(task.product, task.tool) for task in Task.objects.unfinished().select_related("product", "tool")}
    return sorted({capability_queue(product=product, tool=tool) for product, tool in pairs})
