"""A node's status follows its worker: heartbeats, silence, too-old workers, maintenance and quarantine."""

from datetime import timedelta
from unittest import mock

import pytest
import redis
from django.utils import timezone

from execution.models import Case
from execution.recording import events_take
from nodes.models import Node
from nodes.services import liveness_sweep, node_capability_queues, nodes_mark_offline
from tests.events import signed
from tests.factories import CaseFactory, TaskFactory, capable_lab
from worker.protocol import EVENTS_KEY, PROTOCOL_VERSION


def heartbeat(node: Node, *, protocol: int = PROTOCOL_VERSION, queues=(), at=None) -> dict:
    return {
        "type": "heartbeat",
        "node": node.name,
        "at": (at or timezone.now()).isoformat(),
        "version": "1.0.0+abc",
        "protocol": protocol,
        "slots": 1,
        "queues": list(queues),
    }


def case_event(case: Case, node: Node, kind: str, **fields) -> dict:
    event = {"type": "case", "kind": kind, "case_id": case.pk, "task_id": case.task_id, "node": node.name}
    return {**event, "at": timezone.now().isoformat(), **fields}


@pytest.fixture
def broker_calls():
    with (
        mock.patch("messaging.broker.add_consumer") as add,
        mock.patch("messaging.broker.cancel_consumer") as cancel,
    ):
        yield {"add": add, "cancel": cancel}


def record(events, capture):
    with capture(execute=True):
        return events_take(received=[signed(event) for event in events])


def test_a_heartbeat_brings_an_offline_node_online(db, django_capture_on_commit_callbacks):
    _, _, (node,) = capable_lab(status=Node.Status.OFFLINE)
    record([heartbeat(node)], django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert (node.status, node.worker_version, node.worker_protocol) == (
        Node.Status.ONLINE,
        "1.0.0+abc",
        PROTOCOL_VERSION,
    )


def test_a_worker_too_old_for_the_message_format_gets_no_work(db, broker_calls, django_capture_on_commit_callbacks):
    _, _, (node,) = capable_lab()
    (queue,) = node_capability_queues(node=node)
    record([heartbeat(node, protocol=PROTOCOL_VERSION - 1, queues=[queue])], django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert node.status == Node.Status.OUTDATED
    assert "Deploy the worker again" in node.status_reason
    broker_calls["cancel"].assert_called_once_with(node=node.name, queue=queue)


def test_an_updated_worker_brings_an_outdated_node_back(db, broker_calls, django_capture_on_commit_callbacks):
    _, _, (node,) = capable_lab(status=Node.Status.OUTDATED)
    assert node_capability_queues(node=node) == set()  # while outdated, its worker should consume nothing
    record([heartbeat(node, queues=[])], django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert node.status == Node.Status.ONLINE
    assert broker_calls["add"].call_count == 1


@pytest.mark.parametrize("held", [Node.Status.MAINTENANCE, Node.Status.QUARANTINED])
def test_a_heartbeat_does_not_end_maintenance_or_quarantine(db, django_capture_on_commit_callbacks, held):
    _, _, (node,) = capable_lab(status=held)
    record([heartbeat(node)], django_capture_on_commit_callbacks)
    assert Node.objects.get(pk=node.pk).status == held


def test_a_node_in_maintenance_should_consume_no_capability(db):
    _, _, (node,) = capable_lab(status=Node.Status.MAINTENANCE)
    assert node_capability_queues(node=node) == set()


def test_a_silent_node_is_marked_offline_and_a_fresh_one_stays_online(db, settings, hearing):
    settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS = 10
    _, _, (silent, fresh) = capable_lab(nodes=2)
    Node.objects.filter(pk=silent.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=11))
    assert nodes_mark_offline() == [silent.name]
    statuses = dict(Node.objects.values_list("name", "status"))
    assert statuses == {silent.name: Node.Status.OFFLINE, fresh.name: Node.Status.ONLINE}


def test_a_task_for_a_capability_whose_node_went_silent_is_refused_before_the_sweep(api, tester, settings):
    settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS = 10
    product, tool, (node,) = capable_lab()
    Node.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=11))
    body = {"name": "t", "product": product.pk, "tool": tool.pk, "cases": ["a"]}
    response = api.as_user(tester).post("/api/tasks/", body, format="json")
    assert response.status_code == 409
    assert "No online node" in response.json()["detail"]


def _infra_errors(node: Node, count: int, capture) -> None:
    task = TaskFactory()
    for case in CaseFactory.create_batch(count, task=task, status=Case.Status.RUNNING):
        record([case_event(case, node, "infra_error", reason="tool missing", queue="cap.x.y")], capture)


def test_a_node_whose_cases_fail_on_infrastructure_three_times_in_a_row_is_quarantined(
    db, settings, broker_calls, django_capture_on_commit_callbacks
):
    settings.TESTHUB_QUARANTINE_AFTER = 3
    _, _, (node,) = capable_lab()
    _infra_errors(node, 3, django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert node.status == Node.Status.QUARANTINED
    assert "3 cases in a row" in node.status_reason and "run a check" in node.status_reason


def test_a_case_that_runs_normally_resets_the_infrastructure_error_count(
    db, settings, broker_calls, django_capture_on_commit_callbacks
):
    settings.TESTHUB_QUARANTINE_AFTER = 3
    _, _, (node,) = capable_lab()
    _infra_errors(node, 2, django_capture_on_commit_callbacks)
    passed = CaseFactory(status=Case.Status.RUNNING)
    record([case_event(passed, node, "finished", status="passed", exit_code=0)], django_capture_on_commit_callbacks)
    _infra_errors(node, 2, django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert (node.status, node.infra_error_streak) == (Node.Status.ONLINE, 2)


def test_errors_followed_by_a_normal_case_in_one_batch_leave_no_streak(
    db, settings, broker_calls, django_capture_on_commit_callbacks
):
    settings.TESTHUB_QUARANTINE_AFTER = 2
    _, _, (node,) = capable_lab()
    task = TaskFactory()
    failing = CaseFactory.create_batch(2, task=task, status=Case.Status.RUNNING)
    passing = CaseFactory(task=task, status=Case.Status.RUNNING)
    events = [case_event(case, node, "infra_error", reason="tool missing", queue="cap.x.y") for case in failing]
    events.append(case_event(passing, node, "finished", status="passed", exit_code=0))
    record(events, django_capture_on_commit_callbacks)
    node.refresh_from_db()
    assert (node.status, node.infra_error_streak) == (Node.Status.ONLINE, 0)


def test_maintenance_cannot_be_used_to_skip_a_quarantine(api, lab_manager):
    _, _, (node,) = capable_lab(status=Node.Status.QUARANTINED)
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/maintenance/", {"enabled": True}, format="json")
    assert response.status_code == 409
    assert "passing check" in response.json()["detail"]


def test_the_liveness_sweep_takes_a_silent_node_offline_and_hands_its_cases_out_again(
    db, settings, hearing, django_capture_on_commit_callbacks
):
    settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS = 10
    _, _, (node,) = capable_lab()
    Node.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=11))
    case = CaseFactory(status=Case.Status.RUNNING, node=node)
    with django_capture_on_commit_callbacks(execute=True):
        assert liveness_sweep() == [node.name]
    case.refresh_from_db()
    assert (Node.objects.get(pk=node.pk).status, case.status, case.node) == (Node.Status.OFFLINE, "queued", None)


def test_silence_is_not_judged_while_the_recorders_are_a_batch_behind(db, settings, hearing):
    settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS = 10
    _, _, (node,) = capable_lab()
    Node.objects.filter(pk=node.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=11))
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.rpush(EVENTS_KEY, *[b"{}"] * 500)  # its latest heartbeat may be among them
    try:
        assert liveness_sweep() == []
    finally:
        client.delete(EVENTS_KEY)
    assert Node.objects.get(pk=node.pk).status == Node.Status.ONLINE


def test_beat_starts_the_liveness_sweep_the_reconcilers_and_token_cleanup_each_as_a_task_of_its_own():
    from testhub.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled == {
        "nodes.sweep_liveness",
        "nodes.reconcile",
        "execution.reconcile",
        "execution.dispatch",
        "accounts.delete_expired_tokens",
    }
    assert scheduled <= set(app.tasks)
