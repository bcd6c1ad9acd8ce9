"""When Redis is away: a submitted task is kept and dispatched later; a change that needs it says so."""

import pytest

from execution.models import Task
from tests.factories import TaskFactory, capable_lab


@pytest.fixture
def broker_unreachable(settings):
    """Point this process's Celery app at a port where nothing listens, and back afterwards."""
    from testhub.celery import app

    def use(url):
        app.conf.broker_url = url
        app.conf.result_backend = url
        app._pool = None
        app.amqp._producer_pool = None
        app._local.__dict__.pop("backend", None)

    real = app.conf.broker_url
    use("redis://127.0.0.1:9/0")
    yield
    use(real)


def test_a_task_submitted_while_the_broker_is_away_is_kept_for_the_reconciler(
    transactional_db, api, tester, broker_unreachable
):
    product, tool, _ = capable_lab()
    response = api.as_user(tester).post(
        "/api/tasks/", {"name": "t", "product": product.pk, "tool": tool.pk, "cases": ["a", "b"]}
    )
    assert response.status_code == 201
    task = Task.objects.get(pk=response.json()["id"])
    assert task.status == "queued" and task.dispatched_at is None and task.cases.count() == 2


def test_cancelling_while_the_broker_is_away_answers_503_and_changes_nothing(
    transactional_db, api, tester, broker_unreachable
):
    task = TaskFactory(created_by=tester)
    response = api.as_user(tester).post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 503
    assert "broker" in response.json()["detail"]
    task.refresh_from_db()
    assert task.status == "queued"
