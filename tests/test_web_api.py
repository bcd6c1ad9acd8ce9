"""What the web front end asks of the API: a browser session with CSRF, who is signed in, the dashboard, the
submit form's helpers, a log's tail, and the pages of the app itself."""

import pytest
from django.test import Client

from catalog.models import ProductTestResult
from execution.models import Case
from nodes.models import Node
from reporting.services import report_build
from tests.factories import CaseFactory, ReportFactory, TaskFactory, capable_lab

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"


def _signed_in_browser(user) -> tuple[Client, str]:
    browser = Client(enforce_csrf_checks=True)
    token = browser.get("/api/auth/csrf/").json()["csrfToken"]
    body = {"username": user.username, "password": PASSWORD}
    response = browser.post("/api/auth/session/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    return browser, browser.cookies["csrftoken"].value


def test_a_browser_signs_in_with_a_session_and_learns_its_roles(tester):
    browser, _ = _signed_in_browser(tester)
    assert browser.get("/api/auth/me/").json() == {
        "id": tester.pk,
        "username": tester.username,
        "roles": ["tester"],
        "is_lab_manager": False,
    }


def test_signing_in_without_the_csrf_token_is_refused(tester):
    browser = Client(enforce_csrf_checks=True)
    body = {"username": tester.username, "password": PASSWORD}
    assert browser.post("/api/auth/session/", body, content_type="application/json").status_code == 403


def test_a_wrong_password_says_so_in_json(tester):
    browser = Client(enforce_csrf_checks=True)
    token = browser.get("/api/auth/csrf/").json()["csrfToken"]
    body = {"username": tester.username, "password": "wrong"}
    response = browser.post("/api/auth/session/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 400 and response.json()["code"] == "invalid_credentials"


def test_nobody_signed_in_gets_a_401_with_a_code():
    response = Client().get("/api/auth/me/")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_signing_out_ends_the_session(tester):
    browser, token = _signed_in_browser(tester)
    assert browser.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=token).status_code == 204
    assert browser.get("/api/auth/me/").status_code in (401, 403)


def test_a_change_from_a_session_without_the_csrf_token_is_refused(tester):
    browser, _ = _signed_in_browser(tester)
    product, tool, _ = capable_lab()
    body = {"name": "t", "product": product.pk, "tool": tool.pk, "cases": ["a"]}
    assert browser.post("/api/tasks/", body, content_type="application/json").status_code == 403


def test_the_dashboard_counts_nodes_by_status_with_busy_apart(api, tester):
    product, tool, (busy, _idle) = capable_lab(nodes=2)
    CaseFactory(task=TaskFactory(product=product, tool=tool, status="running"), status=Case.Status.RUNNING, node=busy)
    Node.objects.create(name="away", ip="127.0.0.2", username="lab", install_root="/opt/t", status="offline")
    dashboard = api.as_user(tester).get("/api/dashboard/").json()
    assert (dashboard["nodes"]["busy"], dashboard["nodes"]["online"], dashboard["nodes"]["offline"]) == (1, 1, 1)
    (queue,) = dashboard["queues"]
    assert (queue["depth"], queue["online_nodes"]) == (0, 2)
    assert [task["id"] for task in dashboard["running_tasks"]] == [Case.objects.get().task_id]


def test_the_dashboard_shows_the_latest_reports_with_their_success_rates(api, tester):
    report = ReportFactory(status="ready")
    (shown,) = api.as_user(tester).get("/api/dashboard/").json()["latest_reports"]
    assert (shown["id"], shown["task"]) == (report.pk, report.task_id)
    assert shown["success_rate"] is None or isinstance(shown["success_rate"], float)


def test_the_capability_names_the_nodes_that_can_run_and_which_are_online(api, tester):
    product, tool, (online, offline) = capable_lab(nodes=2)
    Node.objects.filter(pk=offline.pk).update(status="offline")
    answer = api.as_user(tester).get(f"/api/capability/?product={product.pk}&tool={tool.pk}").json()
    assert answer["online_nodes"] == [{"id": online.pk, "name": online.name}]
    assert {node["name"] for node in answer["nodes"]} == {online.name, offline.name}


def test_the_capability_says_what_is_missing(api, tester):
    product, _, _ = capable_lab()
    response = api.as_user(tester).get(f"/api/capability/?product={product.pk}")
    assert response.status_code == 400 and "tool's id" in response.json()["tool"][0]


def test_known_case_names_come_from_earlier_runs_of_the_same_product_and_tool(api, tester):
    task = TaskFactory()
    CaseFactory(task=task, name="test_add")
    CaseFactory(task=task, name="test_sub")
    CaseFactory(name="test_elsewhere")
    url = f"/api/case-names/?product={task.product_id}&tool={task.tool_id}&search=add"
    assert api.as_user(tester).get(url).json() == {"results": ["test_add"]}


def test_a_log_tail_gives_its_last_bytes_and_says_how_long_the_whole_is(api, tester):
    case = CaseFactory(log="x" * 1000 + "the end")
    response = api.as_user(tester).get(f"/api/cases/{case.pk}/log/?tail=7")
    assert (response.content, response["X-Log-Size"]) == (b"the end", "1007")


def test_a_log_download_is_an_attachment(api, tester):
    case = CaseFactory(log="all of it")
    response = api.as_user(tester).get(f"/api/cases/{case.pk}/log/?download=1")
    assert "attachment" in response["Content-Disposition"] and response.content == b"all of it"


def test_a_rerun_and_a_cancelled_run_are_told_apart_from_a_full_run_in_the_pass_rate_history():
    full = TaskFactory(status="running")
    CaseFactory(task=full, status="passed")
    rerun = TaskFactory(status="running", product=full.product, tool=full.tool, rerun_of=full)
    CaseFactory(task=rerun, status="passed")
    report_build(task_id=full.pk)
    report_build(task_id=rerun.pk)
    kinds = dict(ProductTestResult.objects.values_list("task", "kind"))
    assert kinds == {full.pk: "full", rerun.pk: "rerun"}


def test_a_tester_runs_a_template_a_lab_manager_saved(api, tester, lab_manager):
    product, tool, _ = capable_lab()
    body = {"name": "nightly", "product": product.pk, "tool": tool.pk, "cases": ["a"]}
    template = api.as_user(lab_manager).post("/api/templates/", body, format="json").json()
    assert api.as_user(tester).post(f"/api/templates/{template['id']}/run/").status_code == 201


def test_every_page_of_the_app_is_its_index_and_the_api_stays_the_api(settings, tmp_path, tester):
    settings.FRONTEND_DIST = tmp_path
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    client = Client()
    for page in ("/", "/tasks/12", "/nodes"):
        assert b"<div id=app>" in b"".join(client.get(page).streaming_content)
    assert client.get("/api/nope/").status_code == 404


def test_the_api_docs_load_nothing_from_another_site(api, tester):
    page = api.as_user(tester).get("/api/docs/").content.decode()
    assert "cdn" not in page.lower() and "/static/drf_spectacular_sidecar/" in page
