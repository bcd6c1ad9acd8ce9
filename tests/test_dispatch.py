"""The broker gets a window of each capability's cases, not whole tasks (execution.dispatch), on real Redis and
PostgreSQL with no worker taking anything."""

import base64
import json
from unittest import mock

import pytest
from django.utils import timezone

from execution import dispatch
from execution.models import Task
from execution.services import task_cancel, task_dispatch, task_submit
from messaging import broker
from nodes.capabilities import capability_queue
from nodes.models import Node
from tests.factories import TesterFactory


def _online(lab, name: str, *, slots: int) -> Node:
    node = lab.add_node(name, slots=slots)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE, last_heartbeat=timezone.now())
    return node


def _dispatched(lab, tester, cases: int, **extra) -> Task:
    task = task_submit(
        user=tester, name="t", product=lab.product, tool=lab.tool, case_names=[f"c{i}" for i in range(cases)],
        priority=5, **extra,
    )  # fmt: skip
    task_dispatch(task_id=task.pk)
    task.refresh_from_db()
    return task


def _queued_in_broker(lab) -> int:
    queue = capability_queue(product=lab.product, tool=lab.tool)
    return broker.queue_depths([queue])[queue]


def _tasks_in_queue_order(lab) -> list[int]:
    """The task of each message on the capability's queue, the next to be taken first."""
    (key,) = lab.redis.keys(f"{capability_queue(product=lab.product, tool=lab.tool)}*")  # one priority level
    messages = [json.loads(raw) for raw in reversed(lab.redis.lrange(key, 0, -1))]  # taken from the right
    return [json.loads(base64.b64decode(message["body"]))[0][0]["task_id"] for message in messages]


def _chord_size(lab, task) -> int:
    return int(lab.redis.get(f"celery-taskset-meta-{broker.chord_group(task.pk)}.s") or 0)


@pytest.fixture
def two_slots(lab):
    _online(lab, "n1", slots=2)
    return lab


def test_a_big_task_puts_only_a_case_per_free_slot_in_the_broker_before_any_has_run(two_slots, tester):
    task = _dispatched(two_slots, tester, 100)
    assert _queued_in_broker(two_slots) == 2
    assert (task.cases_handed_out, task.cases_to_hand_out) == (2, 98)


def test_the_chord_is_opened_for_every_case_of_the_task(two_slots, tester):
    task = _dispatched(two_slots, tester, 100)
    assert _chord_size(two_slots, task) == 100


def test_a_second_look_hands_out_nothing_while_the_queue_is_full(two_slots, tester):
    task = _dispatched(two_slots, tester, 100)
    assert dispatch.capabilities_dispatch() == 0
    task.refresh_from_db()
    assert task.cases_handed_out == 2


def test_cancelling_drops_the_cases_never_handed_out_and_shrinks_the_chord_to_those_that_were(two_slots, tester):
    task = _dispatched(two_slots, tester, 100)
    task_cancel(task=task)
    task.refresh_from_db()
    assert task.cases_to_hand_out == 0 and _chord_size(two_slots, task) == 2


def test_no_case_is_handed_out_while_no_capable_node_is_online(lab, tester):
    node = _online(lab, "n1", slots=2)
    task = task_submit(user=tester, name="t", product=lab.product, tool=lab.tool, case_names=["a", "b"], priority=5)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.MAINTENANCE)
    task_dispatch(task_id=task.pk)
    assert _queued_in_broker(lab) == 0
    assert Task.objects.get(pk=task.pk).cases_to_hand_out == 2


def test_cases_that_could_not_be_published_are_the_next_to_go(two_slots, tester):
    away = mock.patch.object(broker, "chord_parts_publish", side_effect=ConnectionError("broker away"))
    with away, pytest.raises(ConnectionError):
        _dispatched(two_slots, tester, 10)
    task = Task.objects.get()
    assert (task.handed_out_through, task.cases_handed_out, task.cases_to_hand_out) == (0, 0, 10)
    assert dispatch.capabilities_dispatch() == 2


def test_two_users_cases_are_queued_in_turns_not_one_task_after_the_other(lab, tester):
    node = _online(lab, "n1", slots=4)
    first, second = (
        task_submit(
            user=user, name="t", product=lab.product, tool=lab.tool, case_names=[f"c{i}" for i in range(10)], priority=5
        )
        for user in (tester, TesterFactory())
    )
    Node.objects.filter(pk=node.pk).update(status=Node.Status.MAINTENANCE)  # both wait in the database
    for task in (first, second):
        task_dispatch(task_id=task.pk)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE)
    assert dispatch.capabilities_dispatch() == 4
    assert _tasks_in_queue_order(lab) in ([first.pk, second.pk] * 2, [second.pk, first.pk] * 2)
