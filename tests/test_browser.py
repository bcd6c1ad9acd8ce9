"""End to end, in a real browser: a tester and a lab manager use TestHub's web front end on a real lab.

Each test starts the whole stack on loopback (tests/browser.py: nodes n1 and n2 with their workers, the control
worker and beat, gunicorn serving the built front end) and drives headless Chromium through the pages as a person
would, by the `data-test` attributes of frontend/README.md. Every page looked at is kept as a screenshot and
checked with axe-core: no serious or critical violation may be left.

The case names decide what tests/labtool does: pass_* pass, fail_* fail, sleep_<n>_* take n seconds.
"""

import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

pytest_plugins = ["tests.browser"]  # the fixtures: stack, accounts, browser, visit

pytestmark = pytest.mark.slow

LIVE = 30_000  # ms a running task may take to end on the page, without a reload


def by_test(page: Page, name: str):
    return page.locator(f'[data-test="{name}"]')


def text_field(page: Page, name: str):
    """Element Plus puts a field's data-test on its <input> or <textarea> or on the box around it."""
    return page.locator(f':is(input, textarea)[data-test="{name}"], [data-test="{name}"] :is(input, textarea)').first


def choose(page: Page, select: str, option: str) -> None:
    """Open an Element Plus select and click one of its options."""
    by_test(page, select).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(by_test(page, select)).to_contain_text(option)


def sign_in(visitor, user) -> None:
    """Sign in at /login as a person would, and land on the dashboard."""
    page = visitor.page
    visitor.go("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    visitor.look("sign-in")
    text_field(page, "login-username").fill(user.username)
    text_field(page, "login-password").fill(user.plain_password)
    by_test(page, "login-submit").click()
    expect(page).to_have_url(visitor.base_url + "/")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(by_test(page, "current-user")).to_contain_text(user.username)


def submit_task(visitor, name: str, cases: list[str]) -> int:
    """Fill in the submit form for calc 1.0 with labtool 1, send it, and land on the new task's page: its id."""
    page = visitor.page
    by_test(page, "nav-submit").click()
    expect(page.get_by_role("heading", name="Submit a task")).to_be_visible()
    text_field(page, "submit-name").fill(name)
    choose(page, "pick-product", "calc")
    choose(page, "pick-version", "1.0")
    choose(page, "pick-tool", "labtool 1")
    text_field(page, "case-list").fill("\n".join(cases))
    expect(by_test(page, "case-check")).to_contain_text(f"{len(cases)} ")
    expect(by_test(page, "case-problems")).to_have_count(0)
    # The capability panel names the nodes that are online and have the product and the tool.
    expect(by_test(page, "capability-online")).to_contain_text("n1")
    expect(by_test(page, "capability-online")).to_contain_text("n2")
    visitor.look("submit-filled-in")
    by_test(page, "submit-send").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.get_by_role("heading", name=re.compile(re.escape(name)))).to_be_visible()
    return int(page.url.rsplit("/", 1)[1])


def task_status(page: Page):
    return by_test(page, "task-status").locator("[data-status]")


def case_row(page: Page, name: str):
    """The case's row, by its name (the name cell also holds its marks and the first line of its failure)."""
    named = page.locator('[data-test="case-history-open"]', has_text=re.compile(f"^{re.escape(name)}$"))
    return by_test(page, "case-row").filter(has=named)


def node_row(page: Page, name: str):
    return page.locator(f'[data-test="node-row"][data-node="{name}"]')


def node_status(page: Page, name: str):
    return node_row(page, name).locator("[data-status]").first


def test_a_tester_follows_a_task_live_reads_a_failed_log_downloads_the_report_and_reruns_the_failure(visit, accounts):
    page = visit.page
    sign_in(visit, accounts.tester)
    expect(by_test(page, "nodes-online").locator(".figure")).to_have_text("2")
    visit.look("dashboard")

    task_id = submit_task(visit, "Nightly calc", ["pass_a", "fail_b", "sleep_3_c", "pass_d"])

    # The page follows the task as it runs: no reload (the marker set on this document stays) until it is over.
    page.evaluate("() => { window.stillTheSamePage = true }")
    expect(task_status(page)).to_have_attribute("data-status", re.compile("^(queued|running)$"))
    visit.look("task-running")
    expect(task_status(page)).to_have_attribute("data-status", "finished", timeout=LIVE)
    expect(by_test(page, "count-total")).to_have_text("4")
    expect(by_test(page, "count-passed")).to_have_text("3")
    expect(by_test(page, "count-failed")).to_have_text("1")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(case_row(page, "fail_b")).to_have_attribute("data-case-status", "failed")
    expect(page.locator('[data-test="case-row"][data-case-status="passed"]')).to_have_count(3)
    assert page.evaluate("() => window.stillTheSamePage === true"), "the task page was reloaded"
    visit.look("task-finished")

    # The failed case's log says why.
    case_row(page, "fail_b").locator('[data-test="case-log"]').click()
    expect(by_test(page, "log-text")).to_contain_text("assertion failed in fail_b")
    visit.look("failed-case-log")
    page.keyboard.press("Escape")
    expect(by_test(page, "log-viewer")).to_be_hidden()

    # The report is built after the task ends; its spreadsheet downloads.
    expect(by_test(page, "report-download")).to_be_visible(timeout=LIVE)
    visit.look("task-report")
    with page.expect_download() as downloading:
        by_test(page, "report-download").click()
    download = downloading.value
    assert download.suggested_filename == f"testhub-task-{task_id}.xlsx"
    path = download.path()
    assert path.stat().st_size > 0
    assert zipfile.is_zipfile(path) and "xl/workbook.xml" in zipfile.ZipFile(path).namelist()

    # Rerunning the failed case opens a new task, of that case only, which runs to its end too.
    by_test(page, "rerun-failed").click()
    expect(page).not_to_have_url(re.compile(rf"/tasks/{task_id}$"))
    rerun_id = int(page.url.rsplit("/", 1)[1])
    assert rerun_id != task_id
    expect(page.get_by_role("heading", name=f"#{rerun_id} Nightly calc (rerun of #{task_id})")).to_be_visible()
    expect(task_status(page)).to_have_attribute("data-status", "finished", timeout=LIVE)
    expect(by_test(page, "count-total")).to_have_text("1")
    expect(by_test(page, "count-failed")).to_have_text("1")
    expect(case_row(page, "fail_b")).to_have_attribute("data-case-status", "failed")
    visit.look("rerun-finished")

    visit.assert_accessible()


def test_a_tester_cancels_a_running_task_from_its_page(visit, accounts):
    page = visit.page
    sign_in(visit, accounts.tester)
    submit_task(visit, "Long run", ["sleep_30_x", "sleep_30_y", "pass_z"])

    # Both nodes are busy with the long cases; the short one waits for a free node.
    expect(page.locator('[data-test="case-row"][data-case-status="running"]')).to_have_count(2, timeout=LIVE)
    expect(task_status(page)).to_have_attribute("data-status", "running")
    visit.look("task-running")

    by_test(page, "cancel-task").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("running ones are stopped")
    visit.look("cancel-confirmation")
    dialog.get_by_role("button", name="Cancel the task").click()
    expect(task_status(page)).to_have_attribute("data-status", re.compile("^(cancelling|cancelled)$"))
    visit.look("task-cancelling")

    # The running cases are stopped well before their 30 s are up, the queued one never starts.
    expect(task_status(page)).to_have_attribute("data-status", "cancelled", timeout=20_000)
    expect(by_test(page, "count-cancelled")).to_have_text("3")
    expect(by_test(page, "count-passed")).to_have_text("0")
    expect(by_test(page, "cancel-task")).to_have_count(0)
    expect(by_test(page, "rerun-failed")).to_be_disabled()  # nothing failed: only "rerun all" makes sense
    expect(by_test(page, "rerun-all")).to_be_enabled()
    expect(by_test(page, "report").locator("[data-status]").first).to_have_attribute("data-status", "cancelled")
    visit.look("task-cancelled")

    visit.assert_accessible()


def test_a_lab_manager_puts_a_node_in_maintenance_and_back_and_reads_the_page_in_chinese(visit, accounts):
    page = visit.page
    sign_in(visit, accounts.lab_manager)
    by_test(page, "nav-nodes").click()
    expect(page.get_by_role("heading", name="Nodes", exact=True)).to_be_visible()
    expect(node_status(page, "n1")).to_have_attribute("data-status", "online")
    expect(node_status(page, "n2")).to_have_attribute("data-status", "online")
    visit.look("nodes")

    node_row(page, "n1").locator('[data-test="node-maintenance"]').click()
    dialog = page.get_by_role("dialog", name="n1")
    expect(dialog).to_be_visible()
    text_field(page, "maintenance-reason").fill("Replacing a disk")
    visit.look("maintenance-reason")
    by_test(page, "maintenance-confirm").click()
    expect(dialog).to_be_hidden()
    expect(node_status(page, "n1")).to_have_attribute("data-status", "maintenance")
    expect(node_row(page, "n1").locator('[data-test="node-reason"]')).to_have_text("Replacing a disk")
    expect(node_status(page, "n2")).to_have_attribute("data-status", "online")
    visit.look("n1-in-maintenance")

    # Ending it: the node waits for its worker's next heartbeat (every 5 s), then is online again.
    node_row(page, "n1").locator('[data-test="node-maintenance"]').click()
    expect(node_status(page, "n1")).not_to_have_attribute("data-status", "maintenance")
    expect(node_status(page, "n1")).to_have_attribute("data-status", "online", timeout=20_000)
    expect(node_row(page, "n1")).not_to_contain_text("Replacing a disk")
    visit.look("n1-back-online")

    # In Simplified Chinese the page's labels change, and the choice is the document's language.
    by_test(page, "locale-switcher").select_option("zh-CN")
    expect(page.get_by_role("heading", name="节点", exact=True)).to_be_visible()
    expect(by_test(page, "nav-nodes")).to_have_text("节点")
    expect(node_status(page, "n2")).to_have_text("在线")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    visit.look("nodes-in-chinese")

    visit.assert_accessible()


def test_a_tester_sees_what_changed_since_the_last_run_groups_its_failures_notes_one_and_reads_a_cases_history(
    visit, accounts
):
    page = visit.page
    sign_in(visit, accounts.tester)
    submit_task(visit, "Nightly", ["pass_a", "fail_b"])
    expect(by_test(page, "report-download")).to_be_visible(timeout=LIVE)
    task_id = submit_task(visit, "Nightly", ["pass_a", "fail_b", "fail_c"])
    expect(by_test(page, "report-download")).to_be_visible(timeout=LIVE)
    expect(by_test(page, "report-compared")).to_contain_text(f"#{task_id - 1}")
    visit.look("report-compared")

    # Since the previous full run: fail_c is new, fail_b still fails.
    page.get_by_role("tab", name="Changes").click()
    expect(by_test(page, "change-count-new_cases")).to_have_text("1")
    expect(by_test(page, "change-count-still_failing")).to_have_text("1")
    expect(by_test(page, "compare-row")).to_contain_text("fail_b")
    visit.look("changes")

    # Each failure's cause is a group; a note and a bug link on one stay with that cause.
    page.get_by_role("tab", name="Failure groups").click()
    expect(by_test(page, "failure-group")).to_have_count(2)
    group = by_test(page, "failure-group").filter(has_text="fail_b")
    expect(group.locator('[data-test="group-seen"]')).to_contain_text("1")
    group.locator('[data-test="group-edit"]').click()
    text_field(page, "signature-note").fill("Known since the rounding change")
    text_field(page, "signature-bug-url").fill("https://bugs.example/42")
    visit.look("note-dialog")
    by_test(page, "signature-save").click()
    expect(group.locator('[data-test="group-note"]')).to_contain_text("Known since the rounding change")
    expect(group.locator('[data-test="group-bug"]')).to_have_attribute("href", "https://bugs.example/42")
    visit.look("failure-groups")

    # A case's history: both runs, newest first.
    page.get_by_role("tab", name="Cases").click()
    case_row(page, "fail_b").locator('[data-test="case-history-open"]').click()
    expect(by_test(page, "history-row")).to_have_count(2)
    visit.look("case-history")

    visit.assert_accessible()


def test_a_lab_manager_finds_the_labs_state_its_runs_and_their_results_at_a_glance_in_admin(visit, accounts):
    page = visit.page
    sign_in(visit, accounts.lab_manager)
    task_id = submit_task(visit, "Admin look", ["pass_a", "fail_b"])
    expect(by_test(page, "report-download")).to_be_visible(timeout=LIVE)

    visit.go("/admin/")
    expect(page.locator("#lab-figures")).to_contain_text("Nodes online")
    visit.look("admin-index")
    visit.go("/admin/execution/task/")
    expect(page.locator("#result_list")).to_contain_text("50.00%")
    visit.look("admin-tasks")
    visit.go(f"/admin/execution/task/{task_id}/change/")
    visit.look("admin-task")
    page.get_by_role("link", name="fail_b", exact=True).click()
    expect(page.locator("pre")).to_contain_text("assertion failed in fail_b")
    visit.look("admin-case-log")
    visit.go("/admin/reporting/report/")
    visit.look("admin-reports")
    page.locator("#result_list tbody th a").first.click()
    expect(page.locator("body")).to_contain_text("full run")
    expect(page.locator("body")).to_contain_text("mean duration (s)")
    visit.look("admin-report")
    visit.go("/admin/nodes/node/")
    expect(page.locator("#result_list")).to_contain_text("s ago")
    visit.look("admin-nodes")
