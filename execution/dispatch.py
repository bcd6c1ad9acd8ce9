"""Handing queued cases to the broker a window at a time, in the order execution.scheduling decides.

Each task is one Celery chord whose callback builds its report, as before, but its parts (one run_case message
per case) are published as slots free up rather than all at submit: a capability's queue holds about half a
second of work per online capable slot (at least one case), so a case that ends is followed at once by the next,
while who comes next is decided here, a few cases at a time, fairly between users and by priority. A task
submitted behind a 10,000-case task waits for about one round of cases, not for 10,000; cancelling drops cases
that never left the database.

Refills come when cases end (the recorder, after each batch), when a task is dispatched, and every
TESTHUB_DISPATCH_SECONDS from beat (for priorities that age and nodes that come online). One dispatcher at a time
works on a capability (a Redis lock); one that finds it taken asks the holder to look again.
"""

import logging
import math
from collections import Counter, deque

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from execution.jobs import IN_TURN, case_jobs
from execution.models import Case, ShareWeight, Task
from execution.scheduling import Waiting, cases_pick
from execution.selectors import capability_mean_case_seconds
from messaging import broker
from nodes.capabilities import capability_queue
from nodes.models import Node

logger = logging.getLogger(__name__)

_HANDING_OUT = [Task.Status.QUEUED, Task.Status.RUNNING]
QUEUED_SECONDS = 0.5
MOST_QUEUED_PER_SLOT = 500


def task_chord_open(*, task: Task) -> int:
    """Open the task's chord of its queued cases, none handed out yet; returns how many cases it has."""
    size = Task.objects.values_list("cases_queued", flat=True).get(pk=task.pk)  # kept with the cases: no count
    if size:
        broker.chord_open(task_id=task.pk, size=size)
    Task.objects.filter(pk=task.pk).update(handed_out_through=0, cases_handed_out=0, cases_to_hand_out=size)
    return size


def task_chord_close(*, task: Task) -> None:
    """No more of the task's cases will be handed out (it was cancelled): its chord ends with those that were."""
    Task.objects.filter(pk=task.pk).update(cases_to_hand_out=0)
    transaction.on_commit(lambda: _chord_shrink(task.pk))


def _chord_shrink(task_id: int) -> None:
    handed_out = Task.objects.filter(pk=task_id).values_list("cases_handed_out", flat=True).first() or 0
    try:
        broker.chord_resize(task_id=task_id, size=handed_out)
    except Exception:  # the report is also built once the database says every case has ended
        logger.warning("task %s: could not shrink its chord", task_id, exc_info=True)


def capabilities_dispatch(*, task_ids: set[int] | None = None) -> int:
    """Refill the queues of these tasks' capabilities (default: every capability with cases to hand out)."""
    tasks = Task.objects.filter(status__in=_HANDING_OUT)
    tasks = tasks.filter(pk__in=task_ids) if task_ids is not None else tasks.filter(cases_to_hand_out__gt=0)
    pairs = set(tasks.values_list("product_id", "tool_id"))
    return sum(capability_dispatch(product_id=product_id, tool_id=tool_id) for product_id, tool_id in sorted(pairs))


def capability_dispatch(*, product_id: int, tool_id: int) -> int:
    """Hand out as many of the capability's queued cases as its queue has room for; returns how many."""
    sample = Task.objects.select_related("product", "tool").filter(product_id=product_id, tool_id=tool_id).first()
    if sample is None:
        return 0
    queue = capability_queue(product=sample.product, tool=sample.tool)
    handed_out = 0
    while True:
        with broker.dispatch_turn(queue) as ours:
            if not ours:
                return handed_out
            broker.dispatch_again_take(queue)  # what is asked from now on, this pass answers
            handed_out += _queue_fill(sample, queue=queue)
        if not broker.dispatch_again_take(queue):
            return handed_out


def _queue_fill(sample: Task, *, queue: str) -> int:
    room = _queue_depth_wanted(sample) - broker.queue_depths([queue])[queue]
    if room <= 0:
        return 0
    on_capability = Task.objects.filter(product_id=sample.product_id, tool_id=sample.tool_id).unfinished()
    tasks = {task.pk: task for task in on_capability.select_related("product", "tool")}
    in_flight = {task.pk: _in_flight(task) for task in tasks.values()}
    waiting = [
        Waiting(
            task_id=task.pk,
            user_id=task.created_by_id,
            priority=task.priority,
            created_at=task.created_at,
            cases=task.cases_to_hand_out,
            in_flight=in_flight[task.pk],
        )
        for task in tasks.values()
        if task.status in _HANDING_OUT
    ]
    user_in_flight: Counter[int | None] = Counter()
    for task in tasks.values():
        user_in_flight[task.created_by_id] += in_flight[task.pk]
    order = cases_pick(
        waiting=waiting,
        count=room,
        now=timezone.now(),
        aging_seconds=settings.TESTHUB_PRIORITY_AGING_SECONDS,
        user_in_flight=user_in_flight,
        weights=user_weights(user_ids={task.created_by_id for task in tasks.values()}),
    )
    return _cases_hand_out(tasks, order=order, queue=queue)


def _in_flight(task: Task) -> int:
    """The task's cases handed out and not yet ended (before its chord opens, only those running: none)."""
    if task.dispatched_at is None:
        return task.cases_running
    return task.cases_queued + task.cases_running - task.cases_to_hand_out


def _queue_depth_wanted(task: Task) -> int:
    """About QUEUED_SECONDS of work per capable slot, and at least one case: a case that ends is followed at once
    by the next, and the queue lasts until cases ending refill it; cases that take longer wait in the database,
    where fairness and priority still decide their turn."""
    capable = Node.objects.capable_of(product=task.product, tool=task.tool).online()
    slots = sum(slots for _, slots in capable.values_list("pk", "slots"))  # per node: distinct rows, not values
    seconds = capability_mean_case_seconds(product_id=task.product_id, tool_id=task.tool_id)
    per_slot = 1 if not seconds else max(1, min(MOST_QUEUED_PER_SLOT, math.ceil(QUEUED_SECONDS / seconds)))
    return slots * per_slot


def _cases_hand_out(tasks: dict[int, Task], *, order: list[int], queue: str) -> int:
    """Publish the next queued cases of the tasks in `order` (a task id per case, as picked) as parts of their
    chords, in that order, then record them as handed out; returns how many. In that order: a dispatcher that
    dies in between has them published again later (a case may then run twice, and its first end recorded
    wins), never lost. Two cannot race: the caller holds the capability's turn."""
    next_parts = {task_id: deque(_next_parts(tasks[task_id], count=count)) for task_id, count in Counter(order).items()}
    parts = [next_parts[task_id].popleft() for task_id in order if next_parts[task_id]]
    if not parts:
        return 0
    broker.chord_parts_publish(queue=queue, priority=IN_TURN, parts=parts)
    last_case_ids = {part.task_id: part.case_id for part in parts}  # each task's parts go out in case order
    for task_id, count in Counter(part.task_id for part in parts).items():
        task = tasks[task_id]
        Task.objects.filter(pk=task.pk, handed_out_through=task.handed_out_through, status__in=_HANDING_OUT).update(
            handed_out_through=last_case_ids[task_id],
            cases_handed_out=F("cases_handed_out") + count,
            cases_to_hand_out=Greatest(F("cases_to_hand_out") - count, 0),
        )
    return len(parts)


def _next_parts(task: Task, *, count: int) -> list[broker.ChordPart]:
    """The task's next `count` queued cases as parts of its chord (fewer when fewer are left)."""
    group_id = broker.chord_group(task.pk)
    if group_id is None:  # Redis lost the chord: the reconciler opens a new one
        return []
    cases = list(
        Case.objects.filter(task=task, status=Case.Status.QUEUED, pk__gt=task.handed_out_through)
        .order_by("pk")
        .values_list("pk", "name")[:count]
    )
    if not cases:  # its last ones were cancelled or ended meanwhile
        Task.objects.filter(pk=task.pk, handed_out_through=task.handed_out_through).update(cases_to_hand_out=0)
        return []
    return [
        broker.ChordPart(task_id=task.pk, group_id=group_id, index=index, case_id=case_id, job=job)
        for index, ((case_id, _), job) in enumerate(
            zip(cases, case_jobs(task, cases), strict=True), task.cases_handed_out
        )
    ]


def user_weights(*, user_ids: set[int | None]) -> dict[int | None, float]:
    """Each user's share weight: their own, else the highest of their groups', else 1."""
    users = {user_id for user_id in user_ids if user_id is not None}
    weights: dict[int | None, float] = {}
    own = dict(ShareWeight.objects.filter(user_id__in=users).values_list("user_id", "weight"))
    by_group = ShareWeight.objects.filter(group__user__in=users).values_list("group__user", "weight")
    for user_id, weight in by_group:
        weights[user_id] = max(weights.get(user_id, 0.0), float(weight))
    weights.update({user_id: float(weight) for user_id, weight in own.items()})
    return weights
