import pytest
import redis
from django.conf import settings

from tests.factories import CaseFactory, NodeFactory, TaskFactory, capable_lab

pytestmark = pytest.mark.django_db


def _metrics(api, **headers):
    return api.get("/metrics", **headers)


def test_metrics_are_refused_without_a_lab_manager_or_the_token(api, tester):
    assert _metrics(api).status_code in (401, 403)
    assert api.as_user(tester).get("/metrics").status_code == 403


def test_prometheus_reads_the_metrics_with_the_bearer_token(api, settings):
    settings.TESTHUB_METRICS_TOKEN = "scrape-secret"
    assert _metrics(api, HTTP_AUTHORIZATION="Bearer wrong").status_code in (401, 403)
    response = _metrics(api, HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")


def test_metrics_count_cases_tasks_and_nodes_by_status(api, lab_manager):
    task = TaskFactory(status="running")
    CaseFactory.create_batch(2, task=task, status="passed")
    CaseFactory(task=task, status="queued")
    NodeFactory(status="offline")
    text = api.as_user(lab_manager).get("/metrics").content.decode()
    assert 'testhub_cases{status="passed"} 2.0' in text
    assert 'testhub_cases{status="queued"} 1.0' in text
    assert 'testhub_tasks{status="running"} 1.0' in text
    assert 'testhub_nodes{status="offline"} 1.0' in text
    assert 'testhub_case_duration_seconds{stat="avg"}' in text


def test_metrics_show_the_depth_of_each_capability_queue_across_priorities(api, lab_manager):
    product, tool, _ = capable_lab()
    queue = f"cap.{product.slug}.{tool.slug}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(queue, f"{queue}\x06\x164")
    client.rpush(queue, "m1")
    client.rpush(f"{queue}\x06\x164", "m2", "m3")
    try:
        text = api.as_user(lab_manager).get("/metrics").content.decode()
    finally:
        client.delete(queue, f"{queue}\x06\x164")
    assert f'testhub_queue_depth{{queue="{queue}"}} 3.0' in text
