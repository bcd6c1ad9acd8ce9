"""Recording worker events on the real PostgreSQL: every event checked alone, a bad one set aside with its
reason, a batch the database refuses split so the rest is recorded, lost machines' cases requeued."""

import base64
import json
from datetime import timedelta
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from execution import recording
from execution.models import Case, RejectedEvent
from execution.recording import events_take
from execution.services import cases_requeue_from_silent_nodes
from nodes.capabilities import capability_queue
from nodes.models import Node
from nodes.services import node_event_key
from tests.events import signed, signed_payload
from tests.factories import CaseFactory, NodeFactory, TaskFactory
from worker.protocol import PROTOCOL_VERSION, RUN_CASE_TASK
from worker.transport import unacked_keys

pytestmark = pytest.mark.django_db


def _finished(case: Case, node: Node, **fields) -> bytes:
    return signed(_finished_event(case, node, **fields))


def _finished_event(case: Case, node: Node, **fields) -> dict:
    return {
        "type": "case",
        "kind": "finished",
        "case_id": case.pk,
        "task_id": case.task_id,
        "node": node.name,
        "at": timezone.now().isoformat(),
        "status": "passed",
        "exit_code": 0,
        **fields,
    }


def _heartbeat(node: Node) -> bytes:
    beat = {"type": "heartbeat", "node": node.name, "at": timezone.now().isoformat(), "version": "2"}
    return signed({**beat, "protocol": PROTOCOL_VERSION, "slots": 1, "queues": []})


def test_a_nul_byte_in_a_log_is_recorded_as_a_replacement_character():
    node = NodeFactory()
    case = CaseFactory(status="running", node=node)
    events_take(received=[_finished(case, node, log="before\x00after")])
    case.refresh_from_db()
    assert (case.status, case.log) == ("passed", "before\ufffdafter")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (b'{"type": "case", "kind": "finished"}', "case_id: Field required"),
        (b'{"type": "heartbeat", "node": "NODE", "at": "2026-02-30T25:00:00Z"}', "at:"),
        (b'{"type": "heartbeat", "node": "NODE", "at": "2026-01-01T00:00:00"}', "timezone"),
        (b'{"type": "telegram"}', "does not match any of the expected tags"),
        (b'{"type": "case", "kind": "finished", "case_id": "1; DROP TABLE", "task_id": 1}', "case_id"),
    ],
)
def test_a_malformed_event_is_set_aside_with_its_reason_and_the_rest_is_recorded(payload, reason):
    node = NodeFactory(status=Node.Status.OFFLINE)
    case = CaseFactory(status="running", node=node)
    raw = signed_payload(payload.replace(b"NODE", node.name.encode()), node=node)
    outcome = events_take(received=[raw, _finished(case, node), _heartbeat(node)])
    assert outcome.rejected == 1
    (rejected,) = RejectedEvent.objects.all()
    assert reason in rejected.reason and rejected.payload
    assert Case.objects.get(pk=case.pk).status == "passed"
    assert Node.objects.get(pk=node.pk).status == Node.Status.ONLINE  # the heartbeat in the same batch counted


def test_a_batch_the_database_refuses_is_split_and_only_the_poison_event_is_set_aside():
    node = NodeFactory()
    poison, good = CaseFactory.create_batch(2, status="running", node=node)
    with connection.cursor() as cursor:  # the database refuses one row, as a constraint would
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "ALTER TABLE execution_case ADD CONSTRAINT no_poison CHECK (log NOT LIKE '%%poison%%') NOT VALID"
        )
    outcome = events_take(received=[_finished(poison, node, log="poison"), _finished(good, node), _heartbeat(node)])
    assert (outcome.recorded, outcome.rejected) == (2, 1)
    assert Case.objects.get(pk=good.pk).status == "passed"
    assert Case.objects.get(pk=poison.pk).status == "running"
    (rejected,) = RejectedEvent.objects.all()
    assert "the database refused it" in rejected.reason and rejected.node == node.name


def test_an_event_whose_recording_faults_is_set_aside_and_the_batch_is_never_tried_whole_again():
    node = NodeFactory()
    poison, good = CaseFactory.create_batch(2, status="running", node=node)
    apply = recording._case_events_apply

    def faulting_on_the_poison(case_events, node_ids):
        if any(event.case_id == poison.pk for event in case_events):
            raise KeyError("a bug met by this event only")
        return apply(case_events, node_ids)

    with mock.patch("execution.recording._case_events_apply", side_effect=faulting_on_the_poison):
        outcome = events_take(received=[_finished(poison, node), _finished(good, node), _heartbeat(node)])
    assert (outcome.recorded, outcome.rejected) == (2, 1)
    assert (Case.objects.get(pk=good.pk).status, Case.objects.get(pk=poison.pk).status) == ("passed", "running")
    (rejected,) = RejectedEvent.objects.all()
    assert rejected.reason.startswith("recording it failed: KeyError")


def test_an_event_for_a_case_that_ended_already_changes_nothing():
    node = NodeFactory()
    case = CaseFactory(status="failed", node=node, attempts=1, exit_code=1)
    events_take(received=[_finished(case, node)])
    case.refresh_from_db()
    assert (case.status, case.attempts, case.exit_code) == ("failed", 1, 1)


def test_a_case_announced_once_it_ran_a_while_started_when_it_began_not_when_it_was_announced():
    node = NodeFactory()
    case = CaseFactory(node=node)
    began = timezone.now() - timedelta(seconds=5)
    announced = _finished_event(case, node, kind="started", started_at=began.isoformat())
    del announced["status"], announced["exit_code"]
    events_take(received=[signed(announced)])
    events_take(received=[_finished(case, node, started_at=began.isoformat(), announced=True)])
    case.refresh_from_db()
    assert case.started_at == began and case.finished_at - case.started_at >= timedelta(seconds=5)


def test_rejected_events_are_counted_in_the_metrics(api, lab_manager):
    RejectedEvent.objects.create(node="n1", reason="Invalid JSON", payload="x")
    body = api.as_user(lab_manager).get("/metrics").content.decode()
    assert "testhub_rejected_events 1.0" in body


def test_a_lab_manager_reads_the_rejected_events_in_admin(client, lab_manager):
    RejectedEvent.objects.create(node="n1", reason="Invalid JSON: expected value", payload="{oops")
    client.force_login(lab_manager)
    page = client.get("/admin/execution/rejectedevent/").content.decode()
    assert "Invalid JSON: expected value" in page


def _held_by(client: redis.Redis, node: Node, *, case: Case) -> None:
    """A run_case message as a worker's own record keeps it while it holds the message unacknowledged."""
    body = base64.b64encode(json.dumps([[{"case_id": case.pk}], {}, {}]).encode()).decode()
    tag = f"tag-{case.pk}"
    message = {
        "body": body,
        "headers": {"task": RUN_CASE_TASK, "id": tag},
        "properties": {"body_encoding": "base64", "delivery_tag": tag, "priority": 4, "delivery_info": {}},
        "content-type": "application/json",
    }
    keys = unacked_keys(node.name)
    client.hset(keys["unacked_key"], tag, json.dumps([message, "cap.q", "cap.q"]))
    client.zadd(keys["unacked_index_key"], {tag: 1})


def test_the_cases_a_silent_node_held_go_back_to_their_queue_at_once(hearing, django_capture_on_commit_callbacks):
    client = redis.Redis.from_url(settings.REDIS_URL)
    silent = NodeFactory(last_heartbeat=timezone.now() - timedelta(minutes=5))
    alive = NodeFactory()
    task = TaskFactory()
    running_there = CaseFactory(status="running", node=silent, task=task)
    taken_not_announced = CaseFactory(status="queued", task=task)
    running_elsewhere = CaseFactory(status="running", node=alive, task=task)
    _held_by(client, silent, case=running_there)
    _held_by(client, silent, case=taken_not_announced)
    _held_by(client, alive, case=running_elsewhere)
    with django_capture_on_commit_callbacks(execute=True):
        requeued = cases_requeue_from_silent_nodes()
    assert sorted(requeued) == sorted([running_there.pk, taken_not_announced.pk])
    assert Case.objects.get(pk=running_there.pk).status == "queued"
    assert Case.objects.get(pk=running_elsewhere.pk).status == "running"
    assert client.hlen(unacked_keys(silent.name)["unacked_key"]) == 0  # its old messages are forgotten
    assert client.hlen(unacked_keys(alive.name)["unacked_key"]) == 1
    queue = capability_queue(product=task.product, tool=task.tool)
    published = [json.loads(raw) for key in client.keys(f"{queue}*") for raw in client.lrange(key, 0, -1)]
    cases = sorted(json.loads(base64.b64decode(m["body"]))[0][0]["case_id"] for m in published)
    assert cases == sorted(requeued)


def test_only_the_newest_rejected_events_are_kept():
    from execution.recording import rejected_events_prune

    RejectedEvent.objects.bulk_create(RejectedEvent(reason=f"r{i}", payload="") for i in range(12))
    assert rejected_events_prune(keep=5) == 7
    assert set(RejectedEvent.objects.values_list("reason", flat=True)) == {f"r{i}" for i in range(7, 12)}


def _rejected_for(raw: bytes) -> str:
    outcome = events_take(received=[raw])
    assert outcome.rejected == 1 and outcome.recorded == 0
    return RejectedEvent.objects.get().reason


def test_an_unsigned_event_is_set_aside_saying_the_worker_is_too_old():
    node = NodeFactory()
    case = CaseFactory(status="running", node=node)
    assert "deploy it again" in _rejected_for(json.dumps(_finished_event(case, node)).encode())
    assert Case.objects.get(pk=case.pk).status == "running"


def test_an_event_signed_with_another_key_is_set_aside():
    node = NodeFactory()
    node_event_key(node=node)
    case = CaseFactory(status="queued")
    assert "someone else wrote it" in _rejected_for(signed(_finished_event(case, node), key="stolen?"))
    assert Case.objects.get(pk=case.pk).status == "queued"


def test_a_node_cannot_speak_for_another_node():
    honest, other = NodeFactory(), NodeFactory()
    case = CaseFactory(status="queued")
    event = _finished_event(case, other)
    raw = signed(event, key=node_event_key(node=honest))
    raw = raw.replace(other.name.encode(), honest.name.encode(), 1)  # the envelope says honest, the event other
    assert "claims to come from" in _rejected_for(raw)


def test_a_node_cannot_report_a_case_it_was_never_given():
    node = NodeFactory()
    case = CaseFactory(status="queued")  # another tester's case, still in its queue
    assert "never given that case" in _rejected_for(signed({**_finished_event(case, node), "token": "guess"}))
    assert Case.objects.get(pk=case.pk).status == "queued"


def test_a_node_cannot_end_a_case_another_node_is_running():
    runner, other = NodeFactory(), NodeFactory()
    case = CaseFactory(status="running", node=runner, attempts=1)
    events_take(received=[_finished(case, other, status="passed")])
    assert Case.objects.get(pk=case.pk).status == "running"
    events_take(received=[_finished(case, runner, status="failed", exit_code=1)])
    assert Case.objects.get(pk=case.pk).status == "failed"
