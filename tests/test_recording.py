"""Recording worker events on the real PostgreSQL: every event checked alone, a bad one set aside with its
reason, a batch the database refuses split so the rest is recorded, lost machines' cases requeued."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from execution.models import Case, RejectedEvent
from execution.recording import events_take
from execution.services import cases_requeue_from_silent_nodes
from nodes.models import Node
from tests.factories import CaseFactory, NodeFactory, TaskFactory
from worker.protocol import RUN_CASE_TASK

pytestmark = pytest.mark.django_db


def _finished(case: Case, node: Node, **fields) -> bytes:
    event = {
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
    return json.dumps(event).encode()


def _heartbeat(node: Node) -> bytes:
    beat = {"type": "heartbeat", "node": node.name, "at": timezone.now().isoformat(), "version": "1", "protocol": 1}
    return json.dumps({**beat, "slots": 1, "queues": []}).encode()


def test_a_nul_byte_in_a_log_is_recorded_as_a_replacement_character():
    node = NodeFactory()
    case = CaseFactory(status="running", node=node)
    events_take(received=[_finished(case, node, log="before\x00after")])
    case.refresh_from_db()
    assert (case.status, case.log) == ("passed", "before\ufffdafter")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (b'{"type": "case", "kind": "finished"}', "case_id: Field required"),
        (b'{"type": "heartbeat", "node": "n", "at": "2026-02-30T25:00:00Z"}', "at:"),
        (b'{"type": "heartbeat", "node": "n", "at": "2026-01-01T00:00:00"}', "timezone"),
        (b'{"type": "telegram"}', "does not match any of the expected tags"),
        (b'{"type": "case", "kind": "finished", "case_id": "1; DROP TABLE", "task_id": 1}', "case_id"),
    ],
)
def test_a_malformed_event_is_set_aside_with_its_reason_and_the_rest_is_recorded(raw, reason):
    node = NodeFactory(status=Node.Status.OFFLINE)
    case = CaseFactory(status="running", node=node)
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


def test_an_event_for_a_case_that_ended_already_changes_nothing():
    node = NodeFactory()
    case = CaseFactory(status="failed", node=node, attempts=1, exit_code=1)
    events_take(received=[_finished(case, node)])
    case.refresh_from_db()
    assert (case.status, case.attempts, case.exit_code) == ("failed", 1, 1)


def test_rejected_events_are_counted_in_the_metrics(api, lab_manager):
    RejectedEvent.objects.create(node="n1", reason="Invalid JSON", payload="x")
    body = api.as_user(lab_manager).get("/metrics").content.decode()
    assert "testhub_rejected_events 1.0" in body


def test_a_lab_manager_reads_the_rejected_events_in_admin(client, lab_manager):
    RejectedEvent.objects.create(node="n1", reason="Invalid JSON: expected value", payload="{oops")
    client.force_login(lab_manager)
    page = client.get("/admin/execution/rejectedevent/").content.decode()
    assert "Invalid JSON: expected value" in page


def _unacked_run_case(client: redis.Redis, *, tag: str, case_id: int, queue: str) -> None:
    """A run_case message as kombu keeps it while a worker holds it unacknowledged."""
    body = base64.b64encode(json.dumps([[{"case_id": case_id}], {}, {}]).encode()).decode()
    message = {
        "body": body,
        "headers": {"task": RUN_CASE_TASK, "id": tag},
        "properties": {"body_encoding": "base64", "delivery_tag": tag, "priority": 4, "delivery_info": {}},
        "content-type": "application/json",
    }
    client.hset("unacked", tag, json.dumps([message, queue, queue]))
    client.zadd("unacked_index", {tag: 1})
    client.sadd(f"_kombu.binding.{queue}", f"{queue}\x06\x16\x06\x16{queue}")


def test_the_running_case_of_a_silent_node_goes_back_to_its_queue_at_once(hearing, django_capture_on_commit_callbacks):
    client = redis.Redis.from_url(settings.REDIS_URL)
    silent = NodeFactory(last_heartbeat=timezone.now() - timedelta(minutes=5))
    alive = NodeFactory()
    lost = CaseFactory(status="running", node=silent, task=TaskFactory())
    busy = CaseFactory(status="running", node=alive, task=lost.task)
    _unacked_run_case(client, tag="tag-lost", case_id=lost.pk, queue="cap.q")
    _unacked_run_case(client, tag="tag-busy", case_id=busy.pk, queue="cap.q")
    with django_capture_on_commit_callbacks(execute=True):
        assert cases_requeue_from_silent_nodes() == [lost.pk]
    assert Case.objects.get(pk=lost.pk).status == "queued" and Case.objects.get(pk=busy.pk).status == "running"
    assert client.hkeys("unacked") == [b"tag-busy"]  # the lost case's message is back on its queue
    assert client.llen("cap.q\x06\x164") + client.llen("cap.q") == 1


def test_only_the_newest_rejected_events_are_kept():
    from execution.recording import rejected_events_prune

    RejectedEvent.objects.bulk_create(RejectedEvent(reason=f"r{i}", payload="") for i in range(12))
    assert rejected_events_prune(keep=5) == 7
    assert set(RejectedEvent.objects.values_list("reason", flat=True)) == {f"r{i}" for i in range(7, 12)}
