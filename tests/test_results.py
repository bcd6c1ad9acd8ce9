"""What results mean: case history, run-to-run comparison, flaky cases, muting and failure groups, on real
PostgreSQL. Runs are built as TestHub builds them: cases recorded from worker events or made by factories, then
the report build, which closes the task and keeps the flaky tracks."""

from datetime import timedelta

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from catalog.models import Product
from execution.models import CaseTrack, FailureSignature, MutedCase, Task
from execution.recording import events_take
from reporting.services import report_build
from tests.events import signed
from tests.factories import CaseFactory, NodeFactory, ProductFactory, TaskFactory, ToolFactory

pytestmark = pytest.mark.django_db

ZERO_DIVISION = (
    'Traceback (most recent call last):\n  File "/ci/{n}/calc.py", line {n}, in divide\nZeroDivisionError: x\n'
)
TIMEOUT = "[TestHub: timed out after 60 s; process tree killed]\n"


@pytest.fixture
def calc():
    return ProductFactory(name="calc", version="1.0")


@pytest.fixture
def tool():
    return ToolFactory(name="pytest")


def _run(product, tool, outcomes: dict[str, str], *, attempts=1, seconds=1.0, report=True, **task) -> Task:
    """A task whose cases ended as `outcomes` says (name: status), reported unless report=False."""
    run = TaskFactory(product=product, tool=tool, status="running", **task)
    began = timezone.now()
    for name, status in outcomes.items():
        took = seconds.get(name, 1.0) if isinstance(seconds, dict) else seconds
        CaseFactory(
            task=run, name=name, status=status, attempts=attempts, started_at=began,
            finished_at=None if status == "cancelled" else began + timedelta(seconds=took),
        )  # fmt: skip
    if report:
        report_build(task_id=run.pk)
    return run


def _recorded(product, tool, logs: dict[str, str], *, passed=()) -> Task:
    """A task whose cases a node reports: failed with these logs (name: log), the rest passed; then reported."""
    run = TaskFactory(product=product, tool=tool, status="running")
    node = NodeFactory()
    events = []
    for name in [*logs, *passed]:
        case = CaseFactory(task=run, name=name, status="running", node=node, started_at=timezone.now(), attempts=1)
        status = "failed" if name in logs else "passed"
        events.append(
            signed({
                "type": "case", "kind": "finished", "case_id": case.pk, "task_id": run.pk, "node": node.name,
                "at": timezone.now().isoformat(), "status": status, "exit_code": 1 if name in logs else 0,
                "log": logs.get(name, "ok\n"), "announced": True,
            })
        )  # fmt: skip
    events_take(received=events)
    report_build(task_id=run.pk)
    return run


# --- case history ---------------------------------------------------------------------------------------------


def test_a_cases_history_lists_its_runs_on_every_version_newest_first_with_the_first_line_of_each_failure(
    api, tester, calc, tool
):
    newer = ProductFactory(name="calc", version="2.0")
    first = _recorded(calc, tool, {"test_div": ZERO_DIVISION.format(n=1)})
    second = _run(newer, tool, {"test_div": "passed"})
    body = api.as_user(tester).get(f"/api/case-history/?product={calc.pk}&tool={tool.pk}&name=test_div").json()
    runs = [(run["task"], run["product_version"], run["status"], run["failure"]) for run in body["results"]]
    assert runs == [(second.pk, "2.0", "passed", ""), (first.pk, "1.0", "failed", "ZeroDivisionError: x")]


def test_a_cases_history_leaves_out_other_tools_and_other_products(api, tester, calc, tool):
    _run(calc, tool, {"test_div": "passed"})
    _run(calc, ToolFactory(), {"test_div": "failed"})
    _run(ProductFactory(name="other"), tool, {"test_div": "failed"})
    body = api.as_user(tester).get(f"/api/case-history/?product={calc.pk}&tool={tool.pk}&name=test_div").json()
    assert [run["status"] for run in body["results"]] == ["passed"]


def test_a_cases_history_without_a_case_name_is_a_400_that_asks_for_it(api, tester, calc, tool):
    response = api.as_user(tester).get(f"/api/case-history/?product={calc.pk}&tool={tool.pk}")
    assert response.status_code == 400 and "case name" in response.json()["name"][0]


def test_a_cases_history_page_runs_the_same_queries_for_any_page_size(
    api, tester, calc, tool, django_assert_num_queries
):
    for _ in range(12):
        _run(calc, tool, {"test_div": "passed"}, report=False)
    api.as_user(tester)
    url = f"/api/case-history/?product={calc.pk}&tool={tool.pk}&name=test_div"
    # user groups, the product, the tool, one page of runs joined to task, product and node
    with django_assert_num_queries(4):
        assert len(api.get(f"{url}&page_size=2").json()["results"]) == 2
    with django_assert_num_queries(4):
        assert len(api.get(f"{url}&page_size=12").json()["results"]) == 12


# --- run-to-run and version-to-version comparison -------------------------------------------------------------


def _changes(api, user, task, query="") -> dict:
    return api.as_user(user).get(f"/api/tasks/{task.pk}/compare/{query}").json()


def test_a_task_is_compared_with_the_previous_full_run_of_its_product_name_skipping_reruns_and_cancelled_runs(
    api, tester, calc, tool
):
    full = _run(calc, tool, {"a": "passed"})
    _run(calc, tool, {"a": "failed"}, rerun_of=full)
    _run(calc, tool, {"a": "passed", "b": "cancelled"})  # cancelled before every case ran: not a full run
    Task.objects.filter(pk=Task.objects.latest("pk").pk).update(status="cancelled")
    later = _run(ProductFactory(name="calc", version="2.0"), tool, {"a": "failed"})
    assert _changes(api, tester, later)["compared_with"]["id"] == full.pk


def test_a_comparison_names_new_failures_fixed_still_failing_new_and_removed_cases(api, tester, calc, tool):
    before = _run(calc, tool, {"breaks": "passed", "heals": "failed", "stays": "error", "goes": "passed"})
    now = _run(calc, tool, {"breaks": "failed", "heals": "passed", "stays": "failed", "comes": "passed"})
    body = _changes(api, tester, now)
    assert body["compared_with"]["id"] == before.pk
    assert body["counts"] == {
        "new_failures": 1, "fixed": 1, "still_failing": 1, "new_cases": 1, "removed_cases": 1, "slower": 0,
        "faster": 0,
    }  # fmt: skip
    assert body["change"] == "new_failures"
    assert body["results"] == [
        {
            "name": "breaks", "change": "new_failures",
            "now": {"case": body["results"][0]["now"]["case"], "status": "failed", "seconds": 1.0},
            "before": {"case": body["results"][0]["before"]["case"], "status": "passed", "seconds": 1.0},
        }
    ]  # fmt: skip


def test_a_comparison_shows_cases_that_took_far_longer_or_far_shorter(api, tester, calc, tool):
    _run(calc, tool, {"slow": "passed", "fast": "passed", "same": "passed"}, seconds={"slow": 1, "fast": 9})
    now = _run(calc, tool, {"slow": "passed", "fast": "passed", "same": "passed"}, seconds={"slow": 5, "fast": 2})
    counts = _changes(api, tester, now)["counts"]
    assert (counts["slower"], counts["faster"]) == (1, 1)
    assert [row["name"] for row in _changes(api, tester, now, "?change=faster")["results"]] == ["fast"]


def test_a_comparison_pages_through_one_change_in_name_order(api, tester, calc, tool, monkeypatch):
    monkeypatch.setattr("execution.results_api.COMPARE_PAGE", 2)
    names = ["c", "a", "b"]
    _run(calc, tool, dict.fromkeys(names, "passed"))
    now = _run(calc, tool, dict.fromkeys(names, "failed"))
    first = _changes(api, tester, now)
    assert [row["name"] for row in first["results"]] == ["a", "b"] and first["next_after"] == "b"
    second = _changes(api, tester, now, "?change=new_failures&after=b")
    assert [row["name"] for row in second["results"]] == ["c"] and second["next_after"] is None


def test_comparing_with_a_task_that_does_not_exist_is_a_400_that_says_so(api, tester, calc, tool):
    now = _run(calc, tool, {"a": "passed"})
    response = api.as_user(tester).get(f"/api/tasks/{now.pk}/compare/?with=999999")
    assert response.status_code == 400 and "no task with id 999999" in response.json()["with"][0]


def test_a_task_with_no_earlier_full_run_says_there_is_nothing_to_compare_with(api, tester, calc, tool):
    body = _changes(api, tester, _run(calc, tool, {"a": "passed"}))
    assert body["compared_with"] is None and body["results"] == []


def test_two_versions_of_a_product_are_compared_by_their_latest_full_runs(api, tester, calc, tool):
    newer = ProductFactory(name="calc", version="2.0")
    _run(calc, tool, {"a": "failed"})
    old = _run(calc, tool, {"a": "passed"})
    new = _run(newer, tool, {"a": "failed"})
    body = api.as_user(tester).get(f"/api/version-compare/?product={newer.pk}&with={calc.pk}&tool={tool.pk}").json()
    assert (body["task"]["id"], body["compared_with"]["id"], body["counts"]["new_failures"]) == (new.pk, old.pk, 1)


def test_comparing_a_version_with_another_products_is_a_400(api, tester, calc, tool):
    other = ProductFactory(name="other")
    response = api.as_user(tester).get(f"/api/version-compare/?product={calc.pk}&with={other.pk}&tool={tool.pk}")
    assert response.status_code == 400 and "another version of calc" in response.json()["with"][0]


def test_the_report_counts_new_failures_and_fixed_and_lists_the_changes_in_its_workbook(calc, tool):
    before = _run(calc, tool, {"breaks": "passed", "heals": "failed"})
    now = _run(calc, tool, {"breaks": "failed", "heals": "passed"})
    report = now.report
    assert (report.compared_with_id, report.new_failures, report.fixed) == (before.pk, 1, 1)
    rows = list(load_workbook(report.file.path)["Changes"].iter_rows(values_only=True))
    assert [row[:2] for row in rows[1:]] == [("breaks", "New failures"), ("heals", "Fixed")]


# --- flaky cases ----------------------------------------------------------------------------------------------


def _track(product, tool, name) -> CaseTrack:
    return CaseTrack.objects.get(product=product, tool=tool, name=name)


def test_a_case_that_passed_and_failed_within_its_last_runs_is_flaky_with_its_flip_rate(calc, tool):
    for status in ["passed", "failed", "passed", "passed"]:
        _run(calc, tool, {"t": status})
    track = _track(calc, tool, "t")
    assert (track.flaky, track.outcomes, track.runs, track.flips) == (True, "PFPP", 4, 2)
    assert track.flip_rate == pytest.approx(2 / 3)


def test_a_case_that_passed_only_after_a_retry_is_flaky(calc, tool):
    _run(calc, tool, {"t": "passed"}, attempts=2)
    assert _track(calc, tool, "t").flaky


def test_a_case_that_always_fails_is_not_flaky(calc, tool):
    for status in ["failed", "error", "failed"]:
        _run(calc, tool, {"t": status})
    assert not _track(calc, tool, "t").flaky


def test_only_the_last_runs_of_the_window_count(calc, tool, settings):
    settings.TESTHUB_FLAKY_RUNS = 3
    for status in ["failed", "passed", "passed", "passed"]:
        _run(calc, tool, {"t": status})
    track = _track(calc, tool, "t")
    assert (track.flaky, track.outcomes, track.runs) == (False, "FPPP", 3)


def test_runs_on_another_version_of_the_product_do_not_make_a_case_flaky(calc, tool):
    _run(calc, tool, {"t": "failed"})
    _run(ProductFactory(name="calc", version="2.0"), tool, {"t": "passed"})
    assert not _track(calc, tool, "t").flaky


def test_building_a_report_again_does_not_count_its_run_twice(calc, tool):
    from execution.flaky import case_tracks_update

    run = _run(calc, tool, {"t": "passed"})
    case_tracks_update(task=run)
    assert _track(calc, tool, "t").outcomes == "P"


def test_flaky_cases_are_listed_most_often_flipping_first(api, tester, calc, tool):
    for statuses in [("passed", "passed"), ("failed", "passed"), ("passed", "failed"), ("passed", "passed")]:
        _run(calc, tool, {"steady": "passed", "often": statuses[0], "once": statuses[1]})
    body = api.as_user(tester).get(f"/api/flaky-cases/?product={calc.pk}&tool={tool.pk}").json()
    assert [(case["name"], case["recent"]) for case in body["results"]] == [("often", "PFPP"), ("once", "PPFP")]


def test_a_flaky_failure_is_marked_in_the_case_list_and_counted_in_the_report(api, tester, calc, tool):
    _run(calc, tool, {"t": "passed", "u": "passed"})
    now = _run(calc, tool, {"t": "failed", "u": "passed"})
    cases = api.as_user(tester).get(f"/api/tasks/{now.pk}/cases/").json()["results"]
    assert {case["name"]: case["flaky"] for case in cases} == {"t": True, "u": False}
    assert now.report.flaky_failures == 1


# --- muting ---------------------------------------------------------------------------------------------------


def _mute(api, user, tool, name="t", product_name="calc"):
    return api.as_user(user).post(
        "/api/muted-cases/", {"product_name": product_name, "tool": tool.pk, "name": name, "note": "bug 12"}
    )


def test_a_muted_case_runs_but_is_left_out_of_the_success_rate_with_its_count_beside_it(api, lab_manager, calc, tool):
    assert _mute(api, lab_manager, tool, name="noisy").status_code == 201
    run = _run(calc, tool, {"noisy": "failed", "a": "passed", "b": "passed", "c": "failed"})
    report = run.report
    assert (report.failed, report.muted, str(report.success_rate)) == (2, 1, "66.67")
    cases = api.get(f"/api/tasks/{run.pk}/cases/").json()["results"]
    assert {case["name"] for case in cases if case["muted"]} == {"noisy"}


def test_a_tester_cannot_mute_a_case(api, tester, calc, tool):
    assert _mute(api, tester, tool).status_code == 403
    assert not MutedCase.objects.exists()


def test_muting_a_case_twice_is_a_409_that_says_it_is_muted(api, lab_manager, calc, tool):
    _mute(api, lab_manager, tool)
    response = _mute(api, lab_manager, tool)
    assert response.status_code == 409 and "already muted" in response.json()["detail"]


def test_muting_a_case_of_a_product_that_does_not_exist_is_a_400(api, lab_manager, tool):
    response = _mute(api, lab_manager, tool, product_name="nope")
    assert response.status_code == 400 and "no product named" in str(response.json())


# --- failure groups -------------------------------------------------------------------------------------------


def _groups(api, user, task) -> dict:
    return api.as_user(user).get(f"/api/tasks/{task.pk}/failure-groups/").json()


def test_failures_with_one_cause_form_one_group_with_its_count_and_first_cases(api, tester, calc, tool):
    logs = {"d1": ZERO_DIVISION.format(n=1), "d2": ZERO_DIVISION.format(n=2), "slow": TIMEOUT}
    run = _recorded(calc, tool, logs, passed=["ok"])
    body = _groups(api, tester, run)
    assert body["groups"] == 2
    assert [(group["cases"], group["case_names"]) for group in body["results"]] == [(2, ["d1", "d2"]), (1, ["slow"])]
    assert body["results"][0]["signature"]["title"] == "ZeroDivisionError: x (in calc.py:divide)"
    assert body["results"][0]["earlier_runs"] == 0


def test_a_group_says_in_how_many_earlier_runs_its_cause_was_seen(api, tester, calc, tool):
    first = _recorded(calc, tool, {"d": ZERO_DIVISION.format(n=1)})
    _recorded(ProductFactory(name="calc", version="2.0"), tool, {"d": ZERO_DIVISION.format(n=7)})
    latest = _recorded(calc, tool, {"other": ZERO_DIVISION.format(n=9)})
    (group,) = _groups(api, tester, latest)["results"]
    assert (group["earlier_runs"], group["first_task"]) == (2, first.pk)
    assert FailureSignature.objects.count() == 1


def test_a_testers_note_and_bug_link_show_on_later_failures_with_the_same_cause(api, tester, calc, tool):
    first = _recorded(calc, tool, {"d": ZERO_DIVISION.format(n=1)})
    signature = _groups(api, tester, first)["results"][0]["signature"]
    response = api.patch(
        f"/api/failure-signatures/{signature['id']}/", {"note": "known: #77", "bug_url": "https://bugs.example/77"}
    )
    assert response.status_code == 200 and response.json()["noted_by"] == tester.username
    later = _recorded(calc, tool, {"d": ZERO_DIVISION.format(n=5)})
    (case,) = api.get(f"/api/tasks/{later.pk}/cases/?signature={signature['id']}").json()["results"]
    assert (case["signature"]["note"], case["signature"]["bug_url"]) == ("known: #77", "https://bugs.example/77")
    assert case["failure"] == "ZeroDivisionError: x"


def test_a_bug_link_that_is_not_http_is_a_400_that_says_so(api, tester, calc, tool):
    run = _recorded(calc, tool, {"d": ZERO_DIVISION.format(n=1)})
    signature = _groups(api, tester, run)["results"][0]["signature"]
    response = api.patch(f"/api/failure-signatures/{signature['id']}/", {"bug_url": "javascript:alert(1)"})
    assert response.status_code == 400 and "bug_url" in response.json()
    assert FailureSignature.objects.get().bug_url == ""


def test_the_workbook_lists_failure_groups_and_flaky_cases(calc, tool):
    _recorded(calc, tool, {}, passed=["t"])
    run = _recorded(calc, tool, {"t": ZERO_DIVISION.format(n=1)})
    workbook = load_workbook(run.report.file.path)
    groups = list(workbook["Failure groups"].iter_rows(values_only=True))
    assert groups[1][:2] == ("ZeroDivisionError: x (in calc.py:divide)", 1)
    flaky = list(workbook["Flaky cases"].iter_rows(values_only=True))
    assert flaky[1][:5] == ("t", 2, 1, 1.0, "PF")


# --- pass rates -----------------------------------------------------------------------------------------------


def test_a_rerun_is_marked_and_does_not_replace_the_products_pass_rate(api, tester, calc, tool):
    full = _run(calc, tool, {"a": "passed", "b": "failed"})
    rerun = _run(calc, tool, {"b": "passed"}, rerun_of=full)
    product = api.as_user(tester).get(f"/api/products/{calc.pk}/").json()
    assert product["latest_pass_rate"] == 50.0
    assert api.get(f"/api/reports/{rerun.report.pk}/").json()["rerun"] is True
    assert Product.objects.get(pk=calc.pk).test_results.count() == 2


def test_the_workbook_lists_at_most_so_many_cases_of_one_change_and_says_how_many_more(calc, tool, monkeypatch):
    monkeypatch.setattr("reporting.services.CHANGES_LISTED", 2)
    _run(calc, tool, dict.fromkeys("abc", "passed"))
    now = _run(calc, tool, dict.fromkeys("abc", "failed"))
    rows = list(load_workbook(now.report.file.path)["Changes"].iter_rows(values_only=True))
    assert [row[0] for row in rows[1:3]] == ["a", "b"]
    assert rows[3][0].startswith("... and 1 more: GET /api/tasks/") and len(rows) == 4


def test_failures_recorded_before_signatures_are_signed_by_a_command(calc, tool):
    from django.core.management import call_command

    run = _run(calc, tool, {"old": "failed", "fine": "passed"}, report=False)
    run.cases.filter(name="old").update(log=ZERO_DIVISION.format(n=3))
    call_command("sign_failures")
    case = run.cases.get(name="old")
    assert (case.failure, case.signature.title) == ("ZeroDivisionError: x", "ZeroDivisionError: x (in calc.py:divide)")
    assert run.cases.get(name="fine").signature is None


def test_a_reported_tasks_success_rate_is_the_reports_muted_cases_left_out(api, lab_manager, calc, tool):
    _mute(api, lab_manager, tool, name="noisy")
    run = _run(calc, tool, {"noisy": "failed", "a": "passed"})
    assert api.get(f"/api/tasks/{run.pk}/").json()["success_rate"] == 100.0


def test_a_muted_flaky_case_is_listed_with_its_mute(api, lab_manager, calc, tool):
    for status in ["passed", "failed"]:
        _run(calc, tool, {"t": status})
    _mute(api, lab_manager, tool)
    (case,) = api.get(f"/api/flaky-cases/?product={calc.pk}&tool={tool.pk}").json()["results"]
    assert (case["muted"]["note"], case["muted"]["muted_by"]) == ("bug 12", lab_manager.username)


def test_the_change_counts_are_all_zero_when_there_is_nothing_to_compare_with(api, tester, calc, tool):
    counts = _changes(api, tester, _run(calc, tool, {"a": "passed"}))["counts"]
    assert set(counts) == {"new_failures", "fixed", "still_failing", "new_cases", "removed_cases", "slower", "faster"}
    assert set(counts.values()) == {0}


@pytest.mark.parametrize("outcomes", ["P", "PF", "FP", "PFPFP", "PPRP", "EEFF", "PEPE", "FFFFFFFFPPPPPPP", "RRPPF"])
def test_the_flaky_rule_reads_the_same_in_sql_and_in_python(outcomes):
    from django.db import connection

    from execution.flaky import _judged, judged

    window = 5
    sql = _judged("%(outcomes)s", window)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql['runs']}, {sql['flips']}, {sql['flip_rate']}, {sql['flaky']}", {"outcomes": outcomes}
        )
        in_sql = cursor.fetchone()
    in_python = judged(outcomes, window)
    assert in_sql == pytest.approx((in_python.runs, in_python.flips, in_python.flip_rate, in_python.flaky))


def test_the_embedded_defaults_way_keeps_the_same_tracks(calc, tool):
    from execution.flaky import _case_tracks_update_in_python

    for status in ["passed", "failed", "passed"]:
        run = _run(calc, tool, {"t": status, "u": "passed"}, report=False)
        _case_tracks_update_in_python(run)
        _case_tracks_update_in_python(run)  # a repeated build adds nothing
    track = _track(calc, tool, "t")
    assert (track.outcomes, track.runs, track.flips, track.flaky) == ("PFP", 3, 2, True)
    assert not _track(calc, tool, "u").flaky


def test_the_workbooks_cases_sheet_marks_flaky_and_muted_cases(api, lab_manager, calc, tool):
    _mute(api, lab_manager, tool, name="noisy")
    _run(calc, tool, {"t": "passed", "noisy": "passed"})
    run = _run(calc, tool, {"t": "failed", "noisy": "failed"})
    rows = list(load_workbook(run.report.file.path)["Cases"].iter_rows(values_only=True))
    marks = {row[0]: row[10:12] for row in rows[1:]}
    assert marks == {"t": ("flaky", None), "noisy": ("flaky", "muted")}
