"""Whose cases a capability's free slots go to next: the rule, with no database or broker in it.

Priority first, and it ages: a task's priority rises one level every TESTHUB_PRIORITY_AGING_SECONDS it has
waited since it was submitted, up to the highest (9), so a low-priority task is never starved. Among the tasks of
the highest priority, users take turns by their share: the next case goes to the user with the fewest cases in
flight (handed out and not yet ended) for their weight, so two users with big tasks each get half of the slots,
and a user who splits one task into many gains nothing; a tie goes to the user whose task has the fewest cases
left, so a small task is not kept waiting by one. Among one user's tasks, the task with the fewest cases in flight
goes first, then the one with the fewest left, then the oldest. Within a task, cases go in the order they were
submitted (execution.dispatch).
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

HIGHEST_PRIORITY = 9


@dataclass(frozen=True)
class Waiting:
    """A task with cases not yet handed out, as the rule sees it."""

    task_id: int
    user_id: int | None
    priority: int
    created_at: datetime
    cases: int  # not yet handed out
    in_flight: int = 0  # handed out and not yet ended


def aged_priority(*, priority: int, created_at: datetime, now: datetime, aging_seconds: int) -> int:
    """The task's priority after waiting since `created_at`: one level more per `aging_seconds` (0: no aging)."""
    if aging_seconds <= 0:
        return priority
    waited = max(0.0, (now - created_at).total_seconds())
    return min(HIGHEST_PRIORITY, priority + int(waited // aging_seconds))


def cases_pick(
    *,
    waiting: list[Waiting],
    count: int,
    now: datetime,
    aging_seconds: int,
    user_in_flight: dict[int | None, int] | None = None,
    weights: dict[int | None, float] | None = None,
) -> list[int]:
    """Whose cases fill `count` free slots: a task id per slot, in the order they are to go out (a task's id
    once for each of its cases that goes).

    `user_in_flight` counts each user's cases in flight on the capability, also those of tasks with nothing left
    to hand out (by default, those of `waiting`); `weights` gives a user's share (by default 1)."""
    weights = weights or {}
    left = {task.task_id: task.cases for task in waiting if task.cases > 0}
    task_in_flight = {task.task_id: task.in_flight for task in waiting}
    by_user: Counter[int | None] = Counter()
    if user_in_flight is None:
        for task in waiting:
            by_user[task.user_id] += task.in_flight
    else:
        by_user.update(user_in_flight)
    aged = {
        task.task_id: aged_priority(
            priority=task.priority, created_at=task.created_at, now=now, aging_seconds=aging_seconds
        )
        for task in waiting
    }
    ranked = sorted(waiting, key=lambda task: (-aged[task.task_id], task.created_at, task.task_id))
    picked: list[int] = []
    for _ in range(count):
        candidates = [task for task in ranked if left.get(task.task_id)]
        if not candidates:
            break
        band = [task for task in candidates if aged[task.task_id] == aged[candidates[0].task_id]]
        # The user with the fewest cases in flight for their weight; among equals, the one whose task has the
        # fewest cases left (a small task is not kept waiting by a tie), then the one waiting longest.
        user = min(
            band, key=lambda task: ((by_user[task.user_id] + 1) / weights.get(task.user_id, 1.0), left[task.task_id])
        ).user_id
        task = min(
            (task for task in band if task.user_id == user),
            key=lambda task: (task_in_flight[task.task_id], left[task.task_id]),
        )
        picked.append(task.task_id)
        left[task.task_id] -= 1
        task_in_flight[task.task_id] += 1
        by_user[user] += 1
    return picked
