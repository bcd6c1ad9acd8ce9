"""The heart of TestHub, with real parts: Redis, PostgreSQL, a control worker and test-machine workers."""

import pytest

from execution.models import Case, Task
from reporting.models import Report
from tests.lab import wait_for

pytestmark = pytest.mark.slow


def _submit(api, lab, cases, **extra):
    response = api.post(
        "/api/tasks/",
        {"name": "lab run", "product": lab.product.pk, "tool": lab.tool.pk, "cases": cases, **extra},
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


def test_a_task_of_passing_failing_and_timing_out_cases_completes_with_the_right_report(lab, api, tester):
    node = lab.add_node("n1", slots=2)
    lab.start_control()
    lab.start_worker(node)
    lab.wait_online(node)
    task = _submit(api.as_user(tester), lab, ["pass_a", "pass_b", "fail_c", "hang_d"], case_timeout=2)
    report = _wait_closed(task)
    statuses = dict(Case.objects.filter(task=task).values_list("name", "status"))
    assert statuses == {"pass_a": "passed", "pass_b": "passed", "fail_c": "failed", "hang_d": "error"}
    assert (report.total, report.passed, report.failed, report.errors) == (4, 2, 1, 1)
    assert str(report.success_rate) == "66.67"
