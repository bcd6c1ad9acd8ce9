"""Each task's case counts are kept on its row as its cases change, and the reconciler repairs any drift."""

import logging

import pytest

from execution.counts import cases_move, task_counts_repair
from execution.models import Case, Task
from tests.conftest import counts_kept_check
from tests.factories import CaseFactory, TaskFactory, capable_lab

pytestmark = pytest.mark.django_db


def test_a_submitted_task_counts_its_cases_as_queued(api, tester):
    product, tool, _ = capable_lab()
    body = {"name": "t", "product": product.pk, "tool": tool.pk, "cases": ["a", "b", "c"]}
    task = Task.objects.get(pk=api.as_user(tester).post("/api/tasks/", body).json()["id"])
    assert (task.cases_total, task.cases_queued) == (3, 3)


def test_moving_cases_between_statuses_moves_their_counts_in_every_task_touched():
    first, second = TaskFactory(), TaskFactory()
    CaseFactory.create_batch(3, task=first, status="running")
    CaseFactory.create_batch(2, task=second, status="running")
    CaseFactory(task=second, status="passed")
    cases_move(Case.objects.filter(status="running"), to="queued")
    counts_kept_check()
    second.refresh_from_db()
    assert (second.cases_running, second.cases_queued, second.cases_passed) == (0, 2, 1)


def test_cancelling_keeps_the_counts(api, tester):
    task = TaskFactory(created_by=tester)
    CaseFactory.create_batch(4, task=task)
    api.as_user(tester).post(f"/api/tasks/{task.pk}/cancel/")
    task.refresh_from_db()
    assert (task.cases_queued, task.cases_cancelled) == (0, 4)
    counts_kept_check()


def test_the_reconciler_repairs_counts_that_drifted_and_says_so(caplog):
    task = TaskFactory(status="running")
    CaseFactory.create_batch(2, task=task, status="passed")
    Task.objects.filter(pk=task.pk).update(cases_passed=7, cases_queued=1)
    with caplog.at_level(logging.WARNING):
        assert task_counts_repair(task_ids=[task.pk]) == [task.pk]
    assert "drifted" in caplog.text
    counts_kept_check()


def test_task_list_reads_the_kept_counts_without_counting_cases(api, tester, django_assert_num_queries):
    task = TaskFactory()
    CaseFactory.create_batch(3, task=task, status="passed")
    CaseFactory(task=task, status="failed")
    api.as_user(tester)
    # user groups, count, one page of tasks with product, tool, user and report: no case is read
    with django_assert_num_queries(3) as captured:
        body = api.get("/api/tasks/").json()
    assert all("execution_case" not in query["sql"] for query in captured.captured_queries)
    listed = body["results"][0]
    assert listed["counts"]["passed"] == 3 and listed["success_rate"] == 75.0 and listed["progress"] == 100.0


def test_an_event_recorded_twice_counts_once():
    from django.utils import timezone

    from execution.recording import events_take
    from tests.events import signed
    from tests.factories import NodeFactory

    node = NodeFactory()
    case = CaseFactory(status="running", node=node)
    event = {"type": "case", "kind": "finished", "case_id": case.pk, "task_id": case.task_id, "node": node.name}
    raw = signed({**event, "at": timezone.now().isoformat(), "status": "passed", "exit_code": 0, "announced": True})
    events_take(received=[raw, raw])
    events_take(received=[raw])
    counts_kept_check()
    assert Task.objects.get(pk=case.task_id).cases_passed == 1
