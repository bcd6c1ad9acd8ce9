import hashlib
import hmac
import json

import pytest
from django.utils import timezone

from reporting import webhooks
from reporting.services import report_build
from tests.factories import CaseFactory, TaskFactory
from tests.lab import wait_for
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def finished_task(db):
    task = TaskFactory(status="running")
    now = timezone.now()
    CaseFactory(task=task, status="passed", started_at=now, finished_at=now)
    CaseFactory(task=task, status="failed", started_at=now, finished_at=now)
    return task


def test_a_report_summary_is_posted_signed_with_the_shared_secret(finished_task, receiver, settings):
    settings.TESTHUB_WEBHOOK_SECRET = "s3cret"
    report = report_build(task_id=finished_task.pk)
    webhooks.webhook_deliver(report=report, url=receiver.url)
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-TestHub-Signature"] == expected
    summary = json.loads(body)
    assert summary["event"] == "report.ready" and summary["report"]["success_rate"] == 50.0
    assert summary["task"]["id"] == finished_task.pk


def test_a_receiver_that_fails_makes_the_delivery_fail_so_it_is_retried(finished_task, settings):
    failing = Receiver(statuses=[500])
    try:
        report = report_build(task_id=finished_task.pk)
        with pytest.raises(webhooks.DeliveryFailed, match="500"):
            webhooks.webhook_deliver(report=report, url=failing.url)
    finally:
        failing.close()


def test_an_unreachable_receiver_makes_the_delivery_fail(finished_task):
    report = report_build(task_id=finished_task.pk)
    with pytest.raises(webhooks.DeliveryFailed):
        webhooks.webhook_deliver(report=report, url="http://127.0.0.1:9/hook")


def test_building_a_report_only_queues_its_webhooks_after_commit(
    finished_task, settings, django_capture_on_commit_callbacks
):
    settings.TESTHUB_WEBHOOK_URL = "http://127.0.0.1:9/global"
    finished_task.webhook_url = "http://127.0.0.1:9/task"
    finished_task.save(update_fields=["webhook_url"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report_build(task_id=finished_task.pk)
    assert len(callbacks) == 2  # one delivery per URL, sent by the control worker once the report is stored


@pytest.mark.slow
def test_a_finished_task_reaches_its_webhook_even_when_the_receiver_fails_at_first(lab, api, tester):
    flaky = Receiver(statuses=[503, 200])
    try:
        lab.run("n1", TESTHUB_WEBHOOK_URL=flaky.url, TESTHUB_WEBHOOK_SECRET="lab-secret")
        response = api.as_user(tester).post(
            "/api/tasks/", {"name": "hooked", "product": lab.product.pk, "tool": lab.tool.pk, "cases": ["pass_a"]}
        )
        assert response.status_code == 201
        wait_for(lambda: len(flaky.requests) >= 2, timeout=60, message="a retried delivery")
        headers, body = flaky.requests[-1]
        assert headers["X-TestHub-Signature"] == "sha256=" + hmac.new(b"lab-secret", body, hashlib.sha256).hexdigest()
        assert json.loads(body)["report"]["passed"] == 1
    finally:
        flaky.close()
