"""Webhooks: signed report summaries, retried while the receiver fails, sent only where a lab manager allows.

Every test here routes deliveries through a proxy stand-in on loopback (TESTHUB_WEBHOOK_PROXY), unless it
is about a receiver on loopback itself: an address that must be refused is never connected to, even if the
check under test failed.
"""

import base64
import hashlib
import hmac
import json

import pytest
import redis
from django.utils import timezone

from execution.models import Task, WebhookHost
from reporting import webhooks
from reporting.services import report_build
from tests.factories import CaseFactory, TaskFactory, TesterFactory, capable_lab
from tests.lab import wait_for
from tests.webhook_receiver import Receiver

PUBLIC_IP = "93.184.216.34"  # a global address, never connected to: deliveries go to the stand-in proxy


@pytest.fixture
def proxy(settings):
    stand_in = Receiver()
    settings.TESTHUB_WEBHOOK_PROXY = stand_in.base
    yield stand_in
    stand_in.close()


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


def _hooked(task, url: str) -> None:
    Task.objects.filter(pk=task.pk).update(webhook_url=url)
    task.refresh_from_db()


def _submit(api, user, webhook_url: str):
    product, tool, _ = capable_lab()
    body = {"name": "hooked", "product": product.pk, "tool": tool.pk, "cases": ["a"], "webhook_url": webhook_url}
    return api.as_user(user).post("/api/tasks/", body)


@pytest.mark.django_db
def test_a_webhook_host_not_on_the_allow_list_is_refused_saying_how_to_get_it_there(api, tester, proxy):
    response = _submit(api, tester, "https://hooks.example.com/testhub")
    assert response.status_code == 400
    assert "allow-list" in response.json()["webhook_url"][0] and not Task.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/hook", "http://localhost:8000/admin/"]
)
def test_a_webhook_to_an_internal_address_is_refused_even_for_an_allowed_host(api, tester, proxy, url):
    from urllib.parse import urlsplit

    WebhookHost.objects.create(host=urlsplit(url).hostname)
    response = _submit(api, tester, url)
    assert response.status_code == 400
    assert "private, loopback or link-local" in response.json()["detail"]
    assert proxy.paths == []


@pytest.mark.django_db
def test_a_webhook_url_with_credentials_in_it_is_refused(api, tester, proxy):
    WebhookHost.objects.create(host=PUBLIC_IP)
    response = _submit(api, tester, f"http://user:pw@{PUBLIC_IP}/hook")
    assert response.status_code == 400 and "password" in response.json()["detail"]


@pytest.mark.django_db
def test_an_allowed_public_webhook_is_delivered_to_the_address_that_was_checked(api, tester, proxy, finished_task):
    WebhookHost.objects.create(host="*.example.org")
    WebhookHost.objects.create(host=PUBLIC_IP)
    assert _submit(api, tester, f"http://{PUBLIC_IP}/hook?x=1").status_code == 201
    _hooked(finished_task, f"http://{PUBLIC_IP}/hook?x=1")
    webhooks.webhook_deliver(report=report_build(task_id=finished_task.pk), target=webhooks.TASK)
    assert proxy.paths == [f"http://{PUBLIC_IP}:80/hook?x=1"]


@pytest.mark.django_db
def test_a_webhook_whose_host_left_the_allow_list_is_not_sent(proxy, finished_task):
    entry = WebhookHost.objects.create(host=PUBLIC_IP)
    _hooked(finished_task, f"http://{PUBLIC_IP}/hook")
    report = report_build(task_id=finished_task.pk)
    entry.delete()
    with pytest.raises(webhooks.DeliveryRefused, match="allow-list"):
        webhooks.webhook_deliver(report=report, target=webhooks.TASK)
    assert proxy.paths == []


@pytest.mark.django_db
def test_a_receiver_that_redirects_is_not_followed(settings, finished_task):
    redirecting = Receiver(statuses=[302], location="http://169.254.169.254/latest/meta-data/")
    settings.TESTHUB_WEBHOOK_PROXY = redirecting.base
    try:
        WebhookHost.objects.create(host=PUBLIC_IP)
        _hooked(finished_task, f"http://{PUBLIC_IP}/hook")
        with pytest.raises(webhooks.DeliveryRefused, match="redirects are not followed"):
            webhooks.webhook_deliver(report=report_build(task_id=finished_task.pk), target=webhooks.TASK)
        assert redirecting.paths == [f"http://{PUBLIC_IP}:80/hook"]
    finally:
        redirecting.close()


@pytest.mark.django_db
def test_a_host_allowed_private_addresses_reaches_a_service_inside_the_lab(receiver, finished_task):
    WebhookHost.objects.create(host="127.0.0.1", allow_private=True)
    _hooked(finished_task, receiver.url)
    webhooks.webhook_deliver(report=report_build(task_id=finished_task.pk), target=webhooks.TASK)
    assert receiver.paths == ["/hook"]


@pytest.mark.django_db
def test_a_tasks_webhook_url_is_shown_only_to_its_owner_and_lab_managers(api, tester, lab_manager):
    task = TaskFactory(created_by=tester, webhook_url=f"http://{PUBLIC_IP}/secret-token")
    assert api.as_user(tester).get(f"/api/tasks/{task.pk}/").json()["webhook_url"].endswith("secret-token")
    assert api.as_user(lab_manager).get(f"/api/tasks/{task.pk}/").json()["webhook_url"].endswith("secret-token")
    other = TesterFactory()
    assert api.as_user(other).get(f"/api/tasks/{task.pk}/").json()["webhook_url"] == ""
    assert "secret-token" not in api.as_user(other).get("/api/tasks/").content.decode()


@pytest.mark.django_db
def test_the_delivery_message_names_the_webhook_never_its_url(
    finished_task, settings, django_capture_on_commit_callbacks
):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*client.keys("control*") or ["control"])
    _hooked(finished_task, f"http://{PUBLIC_IP}/secret-token")
    with django_capture_on_commit_callbacks(execute=True):
        report = report_build(task_id=finished_task.pk)
    # Any priority level of the control queue (a list per level: control, control\x06\x164, ...).
    (message,) = [json.loads(raw) for key in client.keys("control*") for raw in client.lrange(key, 0, -1)]
    args = json.loads(base64.b64decode(message["body"]))[0]
    assert args == [report.pk, "task"] and "secret-token" not in json.dumps(message)


@pytest.mark.django_db
def test_a_report_summary_is_posted_signed_with_the_shared_secret(finished_task, receiver, settings):
    settings.TESTHUB_WEBHOOK_SECRET = "s3cret"
    settings.TESTHUB_WEBHOOK_URL = receiver.url
    report = report_build(task_id=finished_task.pk)
    webhooks.webhook_deliver(report=report, target=webhooks.GLOBAL)
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-TestHub-Signature"] == expected
    summary = json.loads(body)
    assert summary["event"] == "report.ready" and summary["report"]["success_rate"] == 50.0
    assert summary["task"]["id"] == finished_task.pk


@pytest.mark.django_db
def test_a_receiver_that_fails_makes_the_delivery_fail_so_it_is_retried(finished_task, settings):
    failing = Receiver(statuses=[500])
    settings.TESTHUB_WEBHOOK_URL = failing.url
    try:
        report = report_build(task_id=finished_task.pk)
        with pytest.raises(webhooks.DeliveryFailed, match="500"):
            webhooks.webhook_deliver(report=report, target=webhooks.GLOBAL)
    finally:
        failing.close()


@pytest.mark.django_db
def test_an_unreachable_receiver_makes_the_delivery_fail(finished_task, settings):
    settings.TESTHUB_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    report = report_build(task_id=finished_task.pk)
    with pytest.raises(webhooks.DeliveryFailed):
        webhooks.webhook_deliver(report=report, target=webhooks.GLOBAL)


@pytest.mark.django_db
def test_building_a_report_only_queues_its_webhooks_after_commit(
    finished_task, settings, django_capture_on_commit_callbacks
):
    settings.TESTHUB_WEBHOOK_URL = "http://127.0.0.1:9/global"
    _hooked(finished_task, "http://127.0.0.1:9/task")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report_build(task_id=finished_task.pk)
    assert len(callbacks) == 2  # one delivery per webhook, sent by the control worker once the report is stored


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


@pytest.mark.django_db
def test_lab_managers_keep_the_allow_list_and_testers_read_it(api, lab_manager, tester):
    response = api.as_user(lab_manager).post("/api/webhook-hosts/", {"host": "Hooks.Example.com.", "note": "CI"})
    assert response.status_code == 201 and response.json()["host"] == "hooks.example.com"
    assert api.as_user(tester).get("/api/webhook-hosts/").json()["count"] == 1
    assert api.as_user(tester).post("/api/webhook-hosts/", {"host": "evil.example"}).status_code == 403
    assert api.as_user(lab_manager).post("/api/webhook-hosts/", {"host": "http://x/y"}).status_code == 400
