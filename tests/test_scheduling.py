"""The heart of TestHub, with real parts: Redis, PostgreSQL, a control worker and test-machine workers."""

import os
import signal
import time

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
    lab.run("n1", slots=2)
    task = _submit(api.as_user(tester), lab, ["pass_a", "pass_b", "fail_c", "hang_d"], case_timeout=2)
    report = _wait_closed(task)
    statuses = dict(Case.objects.filter(task=task).values_list("name", "status"))
    assert statuses == {"pass_a": "passed", "pass_b": "passed", "fail_c": "failed", "hang_d": "error"}
    assert (report.total, report.passed, report.failed, report.errors) == (4, 2, 1, 1)
    assert str(report.success_rate) == "66.67"


def _case(task, name):
    return Case.objects.get(task=task, name=name)


def test_live_state_shows_a_case_running_on_its_node_while_it_runs(lab, api, tester):
    (node,) = lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["sleep_3_a"])
    running = wait_for(
        lambda: Case.objects.filter(task=task, status="running", node=node).first(), timeout=10, message="running"
    )
    assert running.started_at is not None and running.attempts == 1
    assert Task.objects.get(pk=task.pk).status == "running"
    report = _wait_closed(task)
    case = _case(task, "sleep_3_a")
    assert case.status == "passed" and case.exit_code == 0 and "slept 3" in case.log
    assert report.passed == 1


def test_a_case_name_is_one_argument_never_shell_syntax(lab, api, tester, tmp_path):
    lab.run("n1")
    marker = tmp_path / "pwned"
    task = _submit(api.as_user(tester), lab, [f"x; touch {marker}", f"$(touch {marker})"])
    _wait_closed(task)
    assert not marker.exists()
    assert set(Case.objects.filter(task=task).values_list("status", flat=True)) == {"passed"}


def test_a_long_log_keeps_its_tail(lab, api, tester):
    lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["spam_a"])
    _wait_closed(task)
    case = _case(task, "spam_a")
    assert len(case.log) < 70_000 and "earlier bytes cut" in case.log and case.log.rstrip().endswith("last line")
    response = api.as_user(tester).get(f"/api/cases/{case.pk}/log/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert b"last line" in response.content


def test_a_machine_missing_the_tool_passes_its_cases_to_a_machine_that_has_it(lab, api, tester):
    good, broken = lab.add_node("good"), lab.add_node("broken", broken=True)
    lab.start_control()
    lab.start_worker(broken)
    lab.wait_online(broken)
    lab.start_worker(good)
    lab.wait_online(good)
    task = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(6)])
    report = _wait_closed(task)
    assert (report.total, report.passed, report.errors) == (6, 6, 0)
    assert set(Case.objects.filter(task=task).values_list("node__name", flat=True)) == {"good"}
    install = broken.installs.get().tools.get()
    assert install.state == "failed" and "not on this machine" in install.state_message


def test_cases_no_machine_can_run_end_as_errors_counted_apart_from_the_success_rate(lab, api, tester):
    from execution.services import reconcile

    broken = lab.add_node("broken", broken=True)
    lab.start_control()
    lab.start_worker(broken)
    lab.wait_online(broken)
    task = _submit(api.as_user(tester), lab, ["pass_a", "pass_b"])
    wait_for(lambda: broken.installs.get().tools.get().state == "failed", message="install marked failed")
    reconcile(grace_seconds=0)
    report = _wait_closed(task)
    assert (report.total, report.passed, report.failed, report.errors) == (2, 0, 0, 2)
    assert report.success_rate is None
    assert "no online node can run" in _case(task, "pass_b").log


def test_a_pool_process_killed_mid_case_loses_nothing_and_counts_nothing_twice(lab, api, tester):
    node = lab.add_node("n1")
    lab.start_control()
    worker = lab.start_worker(node)
    lab.wait_online(node)
    task = _submit(api.as_user(tester), lab, ["sleep_2_a", "pass_b", "pass_c"])
    wait_for(lambda: _case(task, "sleep_2_a").status == "running", message="case running")
    for child in lab.pool_children(worker):
        os.kill(child, signal.SIGKILL)
    report = _wait_closed(task)
    assert (report.total, report.passed) == (3, 3)
    assert _case(task, "sleep_2_a").attempts == 2
    assert Report.objects.filter(task=task).count() == 1


@pytest.mark.lab(visibility_timeout=6)
def test_a_whole_worker_killed_mid_case_loses_nothing_and_counts_nothing_twice(lab, api, tester):
    from execution.services import reconcile

    doomed, survivor = lab.add_node("doomed"), lab.add_node("survivor")
    lab.start_control()
    doomed_worker = lab.start_worker(doomed)
    lab.wait_online(doomed)
    task = _submit(api.as_user(tester), lab, ["sleep_3_a"])
    wait_for(lambda: _case(task, "sleep_3_a").status == "running", message="case running on doomed")
    lab.kill(doomed_worker)
    lab.start_worker(survivor)
    lab.wait_online(survivor)
    time.sleep(7)  # past the visibility timeout: the message is Redis's to hand out again
    reconcile(grace_seconds=3600)
    report = _wait_closed(task, timeout=30)
    case = _case(task, "sleep_3_a")
    assert case.status == "passed" and case.node.name == "survivor" and case.attempts == 2
    assert (report.total, report.passed) == (1, 1)


def test_redis_restarted_empty_mid_task_is_finished_by_the_reconciler(lab, api, tester):
    from execution.services import reconcile

    (node,) = lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["pass_a", "sleep_2_b", "pass_c", "pass_d", "pass_e"])
    wait_for(lambda: _case(task, "sleep_2_b").status == "running", message="case running")
    lab.restart_redis_empty()
    lab.wait_online(node)
    outcome = reconcile(grace_seconds=0)
    assert task.pk in outcome.redispatched
    report = _wait_closed(task, timeout=60)
    assert (report.total, report.passed) == (5, 5)
    assert Case.objects.filter(task=task).exclude(status="passed").count() == 0


def test_the_report_callback_delivered_twice_builds_one_report(lab, api, tester):
    from catalog.models import ProductTestResult
    from testhub.celery import app

    lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["pass_a", "fail_b"])
    first = _wait_closed(task)
    app.send_task("reporting.build_report", args=(task.pk,), queue="control").get(timeout=30)
    assert list(Report.objects.filter(task=task)) == [first]
    assert ProductTestResult.objects.filter(product=lab.product).count() == 1


def test_two_users_tasks_on_one_capability_both_finish(lab, api, tester):
    from tests.factories import TesterFactory

    lab.run("n1", "n2")
    mine = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(10)])
    theirs = _submit(api.as_user(TesterFactory()), lab, [f"pass_{i}" for i in range(10)])
    assert _wait_closed(mine).passed == 10
    assert _wait_closed(theirs).passed == 10


def test_a_later_higher_priority_task_starts_before_the_rest_of_a_lower_one(lab, api, tester):
    lab.run("n1")
    low = _submit(api.as_user(tester), lab, [f"sleep_0.5_{i}" for i in range(6)], priority=1)
    wait_for(lambda: Case.objects.filter(task=low, status="running").exists(), message="low task running")
    high = _submit(api.as_user(tester), lab, [f"pass_{i}" for i in range(3)], priority=9)
    _wait_closed(high)
    _wait_closed(low)
    last_high_start = max(Case.objects.filter(task=high).values_list("started_at", flat=True))
    low_starts = sorted(Case.objects.filter(task=low).values_list("started_at", flat=True))
    # The low task's first case (and at most the one already taken) ran before; the rest waited.
    assert sum(start > last_high_start for start in low_starts) >= 4


def test_a_small_task_behind_another_users_big_task_runs_in_turn_not_after_it(lab, api, tester):
    from tests.factories import TesterFactory

    lab.run("n1", slots=2)
    big = _submit(api.as_user(tester), lab, [f"sleep_0.3_{i}" for i in range(40)])
    wait_for(lambda: Case.objects.filter(task=big, status="passed").exists(), message="big task under way")
    small = _submit(api.as_user(TesterFactory()), lab, [f"pass_{i}" for i in range(4)])
    _wait_closed(small)
    assert Case.objects.filter(task=big, status="queued").count() >= 20
    _wait_closed(big)


def test_two_users_with_big_tasks_take_turns_on_the_lab(lab, api, tester):
    from tests.factories import TesterFactory

    lab.run("n1", slots=2)
    first = _submit(api.as_user(tester), lab, [f"sleep_0.2_{i}" for i in range(24)])
    wait_for(lambda: Case.objects.filter(task=first, status="passed").exists(), message="first task under way")
    second = _submit(api.as_user(TesterFactory()), lab, [f"sleep_0.2_{i}" for i in range(24)])
    _wait_closed(second)
    _wait_closed(first)
    second_began = min(Case.objects.filter(task=second).values_list("started_at", flat=True))
    next_starts = Case.objects.filter(task__in=[first, second], started_at__gte=second_began).order_by("started_at")
    shares = [case.task_id for case in next_starts[:16]]
    assert 6 <= shares.count(second.pk) <= 10  # half of the lab each, once both wait


def test_cancel_stops_the_running_case_and_skips_the_rest_and_the_report_says_cancelled(lab, api, tester):
    lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["hang_a", "pass_b", "pass_c"])
    wait_for(lambda: _case(task, "hang_a").status == "running", message="case running")
    response = api.as_user(tester).post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelling"
    report = _wait_closed(task, timeout=30)
    assert Task.objects.get(pk=task.pk).status == "cancelled"
    assert report.cancelled and report.not_run == 3
    assert set(Case.objects.filter(task=task).values_list("status", flat=True)) == {"cancelled"}


def test_rerun_of_the_failed_cases_makes_a_new_linked_task_that_runs(lab, api, tester):
    lab.run("n1")
    task = _submit(api.as_user(tester), lab, ["pass_a", "fail_b", "fail_c"])
    _wait_closed(task)
    response = api.as_user(tester).post(f"/api/tasks/{task.pk}/rerun/", {"cases": "failed"})
    assert response.status_code == 201
    rerun = Task.objects.get(pk=response.json()["id"])
    assert rerun.rerun_of_id == task.pk
    assert sorted(rerun.cases.values_list("name", flat=True)) == ["fail_b", "fail_c"]
    assert _wait_closed(rerun).failed == 2


def test_a_worker_follows_an_install_added_while_it_runs(lab, api, tester):
    from nodes import services as node_services

    node = lab.add_node("n1")
    node_services.node_installs_set(node=node, installs=[])  # nothing installed when the worker starts
    lab.start_control()
    lab.start_worker(node)
    lab.wait_online(node)
    product_path = f"{lab.root}/n1/products/calc-1.0"
    node_services.node_installs_set(
        node=node,
        installs=[
            node_services.ProductInstall(
                product=lab.product,
                install_path=product_path,
                tools=[node_services.ToolInstall(tool=lab.tool, install_path=f"{lab.root}/n1/tools/labtool-1")],
            )
        ],
    )
    task = _submit(api.as_user(tester), lab, ["pass_a"])
    assert _wait_closed(task, timeout=30).passed == 1
