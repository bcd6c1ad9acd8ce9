import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from execution.models import Task, TaskTemplate
from tests.factories import ProductToolFactory, ReportFactory, TaskFactory, ToolFactory, capable_lab
from tests.lab import wait_for


def _template(api, product, tool, **extra):
    body = {"name": "nightly", "product": product.pk, "tool": tool.pk, "cases": ["a", "b"], **extra}
    return api.post("/api/templates/", body)


@pytest.mark.django_db
def test_a_template_with_a_cron_schedule_gets_a_beat_entry(api, lab_manager):
    link = ProductToolFactory()
    response = _template(api.as_user(lab_manager), link.product, link.tool, cron="30 2 * * 1-5")
    assert response.status_code == 201, response.json()
    periodic = TaskTemplate.objects.get().periodic_task
    assert periodic.task == "execution.run_template" and periodic.queue == "control"
    assert json.loads(periodic.args) == [response.json()["id"]]
    assert (periodic.crontab.minute, periodic.crontab.hour, periodic.crontab.day_of_week) == ("30", "2", "1-5")


@pytest.mark.django_db
def test_a_bad_cron_schedule_is_refused_and_nothing_is_saved(api, lab_manager):
    link = ProductToolFactory()
    response = _template(api.as_user(lab_manager), link.product, link.tool, cron="61 * * * *")
    assert response.status_code == 400
    assert "61 * * * *" in response.json()["detail"]
    assert not TaskTemplate.objects.exists() and not PeriodicTask.objects.filter(task="execution.run_template")


@pytest.mark.django_db
def test_a_template_whose_tool_is_not_linked_is_refused(api, lab_manager):
    link = ProductToolFactory()
    response = _template(api.as_user(lab_manager), link.product, ToolFactory())
    assert response.status_code == 400
    assert "not linked" in str(response.json()["tool"])


@pytest.mark.django_db
def test_clearing_the_schedule_removes_the_beat_entry(api, lab_manager):
    link = ProductToolFactory()
    template_id = _template(api.as_user(lab_manager), link.product, link.tool, cron="0 3 * * *").json()["id"]
    assert api.patch(f"/api/templates/{template_id}/", {"cron": ""}).status_code == 200
    assert not PeriodicTask.objects.filter(task="execution.run_template").exists()


@pytest.mark.django_db
def test_a_tester_cannot_save_a_template(api, tester):
    link = ProductToolFactory()
    assert _template(api.as_user(tester), link.product, link.tool).status_code == 403


@pytest.mark.django_db
def test_running_a_template_now_makes_a_task_that_shows_among_its_runs_with_its_pass_rate(api, lab_manager):
    product, tool, _ = capable_lab()
    template_id = _template(api.as_user(lab_manager), product, tool).json()["id"]
    response = api.post(f"/api/templates/{template_id}/run/")
    assert response.status_code == 201
    run = Task.objects.get(pk=response.json()["id"])
    assert run.template_id == template_id and list(run.cases.values_list("name", flat=True)) == ["a", "b"]
    ReportFactory(task=run, success_rate=50)
    TaskFactory()  # not a run of this template
    runs = api.get(f"/api/templates/{template_id}/runs/").json()["results"]
    assert [(entry["id"], entry["success_rate"]) for entry in runs] == [(run.pk, 50.0)]


@pytest.mark.slow
def test_beat_fires_a_scheduled_template_and_its_run_finishes_with_a_report(lab, api, lab_manager):
    lab.run("n1")
    response = _template(api.as_user(lab_manager), lab.product, lab.tool, cases=["pass_a", "fail_b"], cron="* * * * *")
    template = TaskTemplate.objects.get(pk=response.json()["id"])
    # As if the last run was two minutes ago: the next one is due now, not at the next minute.
    PeriodicTask.objects.filter(pk=template.periodic_task_id).update(last_run_at=timezone.now() - timedelta(minutes=2))
    lab.start_beat()
    run = wait_for(lambda: template.runs.first(), timeout=30, message="a scheduled run")
    wait_for(lambda: Task.objects.get(pk=run.pk).status == "finished", timeout=30, message="the run finished")
    assert run.report.passed == 1 and run.report.failed == 1
