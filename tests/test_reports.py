"""Building a report from the database, without workers: counts, the workbook, idempotency."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from catalog.models import ProductTestResult
from reporting.models import Report
from reporting.services import BUILD_ABANDONED_AFTER, report_build
from tests.factories import CaseFactory, NodeFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ended_task():
    task = TaskFactory(status="running")
    node = NodeFactory(name="lab-1")
    now = timezone.now()
    for name, status in [("a", "passed"), ("b", "passed"), ("c", "passed"), ("d", "failed"), ("e", "error")]:
        CaseFactory(task=task, name=name, status=status, node=node, started_at=now, finished_at=now, attempts=1)
    return task


def test_the_report_counts_errors_apart_from_the_success_rate(ended_task):
    report = report_build(task_id=ended_task.pk)
    assert (report.total, report.passed, report.failed, report.errors, report.not_run) == (5, 3, 1, 1, 0)
    assert str(report.success_rate) == "75.00"
    assert report.by_node == [
        {"node": "lab-1", "total": 5, "passed": 3, "failed": 1, "errors": 1, "success_rate": 75.0, "mean_duration": 0.0}
    ]


def test_the_workbook_has_a_summary_with_a_chart_every_case_the_nodes_changes_flaky_cases_and_failure_groups(
    ended_task,
):
    report = report_build(task_id=ended_task.pk)
    workbook = load_workbook(report.file.path)
    assert workbook.sheetnames == ["Summary", "Cases", "Nodes", "Changes", "Flaky cases", "Failure groups"]
    summary = {row[0]: row[1] for row in workbook["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Success rate (%)"] == 75.0 and "passed / (passed + failed)" in summary["Formula"]
    assert len(workbook["Summary"]._charts) == 1
    cases = list(workbook["Cases"].iter_rows(values_only=True))
    assert cases[0][:3] == ("case", "status", "node") and len(cases) == 6
    assert list(workbook["Nodes"].iter_rows(values_only=True))[1][:2] == ("lab-1", 5)


def test_every_sheet_of_the_workbook_has_a_filter_and_column_widths(ended_task):
    workbook = load_workbook(report_build(task_id=ended_task.pk).file.path)
    for sheet in workbook:
        assert sheet.auto_filter.ref, sheet.title
        assert sheet.column_dimensions["A"].width > 10, sheet.title


def test_building_twice_makes_one_report_and_one_product_result(ended_task):
    first = report_build(task_id=ended_task.pk)
    assert report_build(task_id=ended_task.pk) == first
    assert Report.objects.count() == 1
    assert ProductTestResult.objects.filter(product=ended_task.product).count() == 1
    ended_task.refresh_from_db()
    assert ended_task.status == "finished" and ended_task.finished_at is not None


def test_no_report_is_built_while_a_case_is_still_open(ended_task):
    CaseFactory(task=ended_task, name="still-running", status="running")
    assert report_build(task_id=ended_task.pk) is None
    assert not Report.objects.exists()


def test_the_report_api_states_the_formula_and_the_nodes(api, tester, ended_task):
    report = report_build(task_id=ended_task.pk)
    body = api.as_user(tester).get(f"/api/reports/{report.pk}/").json()
    assert "passed / (passed + failed)" in body["success_rate_formula"]
    assert body["by_node"][0]["node"] == "lab-1"
    assert api.get(f"/api/reports/{report.pk}/download/").status_code == 200


def test_a_tester_cannot_cancel_someone_elses_task(api, tester):
    task = TaskFactory()
    response = api.as_user(tester).post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 403
    assert "own tasks" in response.json()["detail"]


def test_a_finished_task_cannot_be_cancelled(api, lab_manager):
    task = TaskFactory(status="finished")
    response = api.as_user(lab_manager).post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 409


def test_names_people_wrote_reach_the_workbook_as_text_never_as_formulas(settings):
    task = TaskFactory(status="running", name="=cmd|' /C calc'!A0")
    now = timezone.now()
    # Rows written before names were checked, or by an outside system: the report must still build.
    for name in ['=HYPERLINK("http://evil.example/","click")', "bad\x01char", "+1+1"]:
        CaseFactory(task=task, name=name, status="passed", started_at=now, finished_at=now, attempts=1)
    report = report_build(task_id=task.pk)
    workbook = load_workbook(report.file.path)
    cells = {cell.value: cell.data_type for row in workbook["Cases"].iter_rows(min_row=2) for cell in row[:1]}
    assert cells == {'=HYPERLINK("http://evil.example/","click")': "s", "bad\ufffdchar": "s", "+1+1": "s"}
    task_cell = next(row[1] for row in workbook["Summary"].iter_rows() if row[0].value == "Task")
    assert task_cell.data_type == "s" and task_cell.value.endswith("=cmd|' /C calc'!A0")


@pytest.mark.django_db(transaction=True)
def test_the_workbook_is_written_without_holding_the_tasks_row_lock(ended_task):
    """Cancelling, recording or reconciling the task must not wait on a build of a million-row workbook."""
    from django.db import connections

    from reporting import services

    locked_elsewhere = []

    def try_the_lock(*args, **kwargs):
        other = connections.create_connection("default")  # a second session, as another process would have
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT id FROM execution_task WHERE id = %s FOR UPDATE NOWAIT", [ended_task.pk])
                locked_elsewhere.append(cursor.fetchone()[0])
                cursor.execute("ROLLBACK")
        finally:
            other.close()
        return write_workbook(*args, **kwargs)

    write_workbook = services.write_workbook
    with mock.patch("reporting.services.write_workbook", side_effect=try_the_lock):
        report_build(task_id=ended_task.pk)
    assert locked_elsewhere == [ended_task.pk]


def test_a_build_under_way_elsewhere_is_left_to_finish(ended_task):
    claimed = Report.objects.create(task=ended_task, status=Report.Status.BUILDING, build_started_at=timezone.now())
    assert report_build(task_id=ended_task.pk) == claimed
    claimed.refresh_from_db()
    ended_task.refresh_from_db()
    assert (claimed.status, ended_task.status) == (Report.Status.BUILDING, "running")


def test_a_build_abandoned_by_a_dead_worker_is_taken_over(ended_task):
    long_ago = timezone.now() - BUILD_ABANDONED_AFTER - timedelta(minutes=1)
    Report.objects.create(task=ended_task, status=Report.Status.BUILDING, build_started_at=long_ago)
    report = report_build(task_id=ended_task.pk)
    assert (report.status, report.total, Report.objects.count()) == (Report.Status.READY, 5, 1)


def test_a_build_that_fails_leaves_no_claim_behind(ended_task):
    with (
        mock.patch("reporting.services.write_workbook", side_effect=OSError("disk full")),
        pytest.raises(OSError, match="disk full"),
    ):
        report_build(task_id=ended_task.pk)
    assert not Report.objects.exists()
    assert report_build(task_id=ended_task.pk).status == Report.Status.READY
