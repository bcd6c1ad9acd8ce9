"""A bad day in the lab, with real parts: poison output and events, Redis and PostgreSQL going away, machines
and control workers dying, names that differ only in case. Nothing is lost, nothing is counted twice, and
the lab keeps going."""

import os
import signal
import time

import psycopg
import pytest
import redis
from django.db import connection

from catalog.models import Product, ProductTool
from execution.models import Case, RejectedEvent, Task
from nodes.models import Node
from reporting.models import Report
from tests.events import signed, signed_payload
from tests.lab import wait_for
from tests.servers import database_outage
from worker.protocol import EVENTS_KEY

pytestmark = pytest.mark.slow


def _submit(api, lab, cases, product=None, **extra):
    product = product or lab.product
    response = api.post(
        "/api/tasks/", {"name": "lab run", "product": product.pk, "tool": lab.tool.pk, "cases": cases, **extra}
    )
    assert response.status_code == 201, response.json()
    return Task.objects.get(pk=response.json()["id"])


def _wait_closed(task, timeout=60):
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, status__in=[Task.Status.FINISHED, Task.Status.CANCELLED]).exists(),
        timeout=timeout,
        message=f"task {task.pk} closed",
    )
    return Report.objects.get(task=task)


def _case(task, name):
    return Case.objects.get(task=task, name=name)


def test_a_nul_byte_in_a_cases_output_is_recorded_and_the_lab_keeps_going(lab, api, tester):
    (node,) = lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["nul_a", "pass_b"])
    report = _wait_closed(task)
    assert (report.passed, report.failed) == (2, 0)
    assert "before\ufffdafter" in _case(task, "nul_a").log
    later = _submit(api.as_user(tester), lab, ["pass_c"])  # heartbeats and recording went on
    assert _wait_closed(later).passed == 1
    assert Node.objects.get(pk=node.pk).status == Node.Status.ONLINE


def test_malformed_events_are_set_aside_with_their_reason_and_the_rest_is_recorded(lab, api, tester):
    (node,) = lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["sleep_2_a"])
    wait_for(lambda: _case(task, "sleep_2_a").status == "running", message="case running")
    event = {"type": "case", "kind": "finished", "case_id": _case(task, "sleep_2_a").pk, "task_id": task.pk}
    lab.redis.lpush(
        EVENTS_KEY,
        b"not an envelope at all",
        signed_payload(b"not json", node=node),
        signed({**event, "node": "n1", "status": "passed"}),  # no time
        signed({**event, "node": "n1", "status": "passed", "at": "yesterday"}),
        signed({**event, "node": "n1", "status": "exploded", "at": "2026-01-01T00:00:00Z"}),
    )
    report = _wait_closed(task)
    assert report.passed == 1 and _case(task, "sleep_2_a").attempts == 1
    reasons = sorted(RejectedEvent.objects.values_list("reason", flat=True))
    assert len(reasons) == 5
    assert any("not a signed event" in reason for reason in reasons)
    assert any("Invalid JSON" in reason for reason in reasons)
    assert any("at: Field required" in reason for reason in reasons)
    assert any("status:" in reason for reason in reasons)
    assert Node.objects.get(pk=node.pk).status == Node.Status.ONLINE


def test_workers_ride_out_a_redis_outage_and_report_what_finished_meanwhile(private_redis, lab, api, tester):
    from execution.services import reconcile

    (node,) = lab.run("n1")
    worker = lab.workers["n1"]
    task = _submit(api.as_user(tester), lab, ["sleep_5_a", "pass_b", "pass_c"])
    wait_for(lambda: _case(task, "sleep_5_a").status == "running", message="case running")
    private_redis.kill()
    time.sleep(3)
    private_redis.start()  # empty: the queued cases and the chord are gone with it
    wait_for(lambda: _case(task, "sleep_5_a").status == "passed", timeout=30, message="the case ended meanwhile")
    assert worker.poll() is None, "the worker exited"
    lab.wait_online(node)
    assert task.pk in reconcile(grace_seconds=0).redispatched
    report = _wait_closed(task)
    assert (report.total, report.passed) == (3, 3)
    assert _case(task, "sleep_5_a").attempts == 1


def test_a_machine_that_dies_mid_case_has_its_case_run_elsewhere_within_seconds(lab, api, tester):
    doomed, survivor = lab.add_node("doomed"), lab.add_node("survivor")
    lab.start_control()
    doomed_worker = lab.start_worker(doomed)
    lab.wait_online(doomed)
    task = _submit(api.as_user(tester), lab, ["sleep_6_a"])
    wait_for(lambda: _case(task, "sleep_6_a").node_id == doomed.pk, message="case running on doomed")
    lab.start_worker(survivor)
    lab.wait_online(survivor)
    killed_at = time.monotonic()
    lab.kill(doomed_worker)  # the visibility timeout is an hour: only the requeue can save the case
    report = _wait_closed(task, timeout=60)
    case = _case(task, "sleep_6_a")
    assert (case.status, case.node_id, case.attempts) == ("passed", survivor.pk, 2)
    assert time.monotonic() - killed_at < 40
    assert report.passed == 1


def test_a_database_outage_mid_task_loses_nothing_and_counts_nothing_twice(lab, api, tester):
    lab.run("n1", "n2", slots=2)
    names = [f"sleep_1_{i}" for i in range(12)]
    task = _submit(api.as_user(tester), lab, names)
    wait_for(lambda: Case.objects.filter(task=task, status="passed").exists(), message="first case ended")
    database_outage(6)
    report = _wait_closed(task, timeout=120)
    assert (report.total, report.passed) == (12, 12)
    assert set(Case.objects.filter(task=task).values_list("attempts", flat=True)) == {1}
    assert not RejectedEvent.objects.exists()


def test_two_control_workers_at_once_record_every_case_once(lab, api, tester):
    nodes = [lab.add_node(name, slots=2) for name in ("n1", "n2")]
    lab.start_control("control-a")
    lab.start_control("control-b")
    for node in nodes:
        lab.start_worker(node)
    lab.wait_online(*nodes)
    task = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(200)])
    report = _wait_closed(task, timeout=120)
    assert (report.total, report.passed) == (200, 200)
    assert set(Case.objects.filter(task=task).values_list("attempts", flat=True)) == {1}
    assert Report.objects.filter(task=task).count() == 1
    assert not RejectedEvent.objects.exists()


def test_the_events_a_dead_control_worker_left_are_recorded_by_another(lab, api, tester):
    (node,) = [lab.add_node("n1")]
    first = lab.start_control("control-a", TESTHUB_RECORDER_ALIVE_SECONDS="3")
    lab.start_worker(node)
    lab.wait_online(node)
    task = _submit(api.as_user(tester), lab, ["sleep_1_a"])
    case = wait_for(lambda: Case.objects.filter(task=task, status="running").first(), message="case running")
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", dbname=settings["NAME"], user="postgres") as blocker:
        # Hold the case's row: control-a's recorder takes the case's end and waits on it, holding it.
        blocker.execute("SELECT 1 FROM execution_case WHERE id = %s FOR UPDATE", [case.pk])
        wait_for(lambda: lab.redis.llen(f"{EVENTS_KEY}:processing:control-a@{lab.root.name}") > 0, message="taken")
        lab.kill(first)
    lab.start_control("control-b", TESTHUB_RECORDER_ALIVE_SECONDS="3")
    report = _wait_closed(task, timeout=60)
    assert report.passed == 1 and _case(task, "sleep_1_a").attempts == 1


def test_two_products_whose_names_differ_only_in_case_run_on_their_own_nodes(lab, api, tester):
    upper = Product.objects.create(name="Calc", version="1.0")
    ProductTool.objects.create(product=upper, tool=lab.tool)
    lower_node, upper_node = lab.add_node("lower"), lab.add_node("upper", product=upper)
    assert lab.product.slug != upper.slug
    lab.start_control()
    lab.start_worker(lower_node)
    lab.start_worker(upper_node)
    lab.wait_online(lower_node, upper_node)
    lower_task = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(4)])
    upper_task = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(4)], product=upper)
    assert _wait_closed(lower_task).passed == 4 and _wait_closed(upper_task).passed == 4
    assert set(Case.objects.filter(task=lower_task).values_list("node__name", flat=True)) == {"lower"}
    assert set(Case.objects.filter(task=upper_task).values_list("node__name", flat=True)) == {"upper"}
    assert set(Node.objects.values_list("status", flat=True)) == {Node.Status.ONLINE}


def test_a_worker_exits_0_when_asked_to_stop_and_non_zero_after_a_fault(private_redis, lab):
    from nodes.services import node_broker_username

    _, broken_node = lab.run("n1", "n2")
    stopped, broken = lab.workers["n1"], lab.workers["n2"]
    os.kill(stopped.pid, signal.SIGTERM)
    assert stopped.wait(timeout=30) == 0
    # A fault Celery cannot recover from: the broker refuses the command it reads queues with.
    client = redis.Redis.from_url(private_redis.url)
    client.execute_command("ACL", "SETUSER", node_broker_username(broken_node), "-brpop")
    assert broken.wait(timeout=30) != 0  # so a supervisor that restarts on failure restarts it


def test_test_code_sees_none_of_its_workers_settings_or_secrets(lab, api, tester):
    from nodes.services import node_worker_settings

    (node,) = lab.run("n1")
    secrets = node_worker_settings(node=node, broker_url=lab.redis_url)
    task = _submit(api.as_user(tester), lab, ["env_a"])
    assert _wait_closed(task).passed == 1
    log = _case(task, "env_a").log
    assert "PATH=" in log and "TESTHUB_" not in log and "REDIS" not in log and "DATABASE_URL" not in log
    assert secrets["TESTHUB_NODE_KEY"] not in log and secrets["TESTHUB_BROKER_URL"] not in log


def test_a_machine_can_send_the_control_plane_nothing_but_report_callbacks(lab, api, tester):
    from celery import Celery

    from execution.models import TaskTemplate
    from nodes.services import node_worker_settings
    from worker.protocol import CHORD_QUEUE, celery_settings

    (node,) = lab.run("n1")
    template = TaskTemplate.objects.create(name="t", product=lab.product, tool=lab.tool, cases=["pass_a"])
    # What test code holding its worker's credentials could send: a control task on the one queue it may write.
    stolen = Celery("stolen", set_as_current=False)
    broker_url = node_worker_settings(node=node, broker_url=lab.redis_url)["TESTHUB_BROKER_URL"]
    stolen.conf.update(celery_settings(broker_url=broker_url, visibility_timeout=3600, result_expires=3600))
    stolen.send_task("execution.run_template", args=(template.pk,), queue=CHORD_QUEUE)
    time.sleep(3)
    assert not Task.objects.filter(template=template).exists()
    assert "refused execution.run_template" in (lab.root / "control.log").read_text()
