import pytest
from django.utils import timezone

from execution.models import Case, Task
from nodes.models import Node
from tests.factories import CaseFactory, NodeFactory, ProductToolFactory, ReportFactory, TaskFactory, capable_lab

pytestmark = pytest.mark.django_db


def _submit(api, product, tool, cases, **extra):
    return api.post("/api/tasks/", {"name": "nightly", "product": product.pk, "tool": tool.pk, "cases": cases, **extra})


def test_a_submitted_task_stores_its_cases_in_order_and_answers_with_counts(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, ["test_b", "test_a", "test_c"], priority=7)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["priority"] == 7 and body["created_by"] == tester.username
    assert body["counts"]["total"] == 3 and body["counts"]["queued"] == 3 and body["progress"] == 0.0
    task = Task.objects.get(pk=body["id"])
    assert list(task.cases.values_list("name", flat=True)) == ["test_b", "test_a", "test_c"]


def test_a_task_whose_tool_is_not_linked_to_the_product_is_refused(api, tester):
    product, _, _ = capable_lab()
    other_tool = ProductToolFactory().tool
    response = _submit(api.as_user(tester), product, other_tool, ["a"])
    assert response.status_code == 400
    assert "not linked" in response.json()["detail"]
    assert not Task.objects.exists()


def test_a_task_with_no_online_capable_node_is_refused_naming_the_capability(api, tester):
    product, tool, _ = capable_lab(status=Node.Status.OFFLINE)
    response = _submit(api.as_user(tester), product, tool, ["a"])
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"cap.{product.slug}.{tool.slug}" in detail and "(offline)" in detail
    assert not Task.objects.exists()


def test_a_task_whose_capability_is_installed_nowhere_says_to_install_it(api, tester):
    link = ProductToolFactory()
    NodeFactory()
    response = _submit(api.as_user(tester), link.product, link.tool, ["a"])
    assert response.status_code == 409
    assert "install" in response.json()["detail"]


def test_a_node_in_maintenance_does_not_make_a_capability_available(api, tester):
    product, tool, _ = capable_lab(status=Node.Status.MAINTENANCE)
    assert _submit(api.as_user(tester), product, tool, ["a"]).status_code == 409


def test_an_empty_case_list_is_refused(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, [])
    assert response.status_code == 400
    assert "cases" in response.json()


def test_repeated_case_names_are_refused_and_named(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, ["a", "b", "a"])
    assert response.status_code == 400
    assert "'a'" in str(response.json()["cases"])
    assert not Task.objects.exists()


def test_a_blank_case_name_is_refused(api, tester):
    product, tool, _ = capable_lab()
    assert _submit(api.as_user(tester), product, tool, ["a", "  "]).status_code == 400


def test_a_case_list_over_the_bound_is_refused(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, [f"c{i}" for i in range(100_001)])
    assert response.status_code == 400
    assert "100000" in str(response.json()["cases"])


def test_cases_that_are_not_a_list_of_strings_are_refused(api, tester):
    product, tool, _ = capable_lab()
    assert _submit(api.as_user(tester), product, tool, "a,b").status_code == 400
    assert _submit(api.as_user(tester), product, tool, [{"name": "a"}]).status_code == 400


def test_a_priority_out_of_range_is_refused(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, ["a"], priority=10)
    assert response.status_code == 400
    assert "priority" in response.json()


def test_an_unknown_product_id_is_refused_naming_the_id(api, tester):
    _, tool, _ = capable_lab()
    response = api.as_user(tester).post(
        "/api/tasks/", {"name": "x", "product": 987654, "tool": tool.pk, "cases": ["a"]}
    )
    assert response.status_code == 400
    assert "987654" in str(response.json()["product"])


def test_ten_thousand_cases_are_written_in_one_request(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, [f"test_{i}" for i in range(10_000)])
    assert response.status_code == 201
    assert Case.objects.filter(task_id=response.json()["id"]).count() == 10_000


def test_task_progress_counts_cases_that_have_ended(api, tester):
    task = TaskFactory()
    for status in ["passed", "failed", "running", "queued"]:
        CaseFactory(task=task, status=status)
    body = api.as_user(tester).get(f"/api/tasks/{task.pk}/").json()
    assert body["counts"]["passed"] == 1 and body["counts"]["running"] == 1
    assert body["progress"] == 50.0


def test_task_cases_are_filtered_by_status_and_node(api, tester):
    task = TaskFactory()
    node = NodeFactory()
    wanted = CaseFactory(task=task, status="failed", node=node)
    CaseFactory(task=task, status="failed")
    CaseFactory(task=task, status="passed", node=node)
    response = api.as_user(tester).get(f"/api/tasks/{task.pk}/cases/?status=failed&node={node.pk}")
    assert [case["id"] for case in response.json()["results"]] == [wanted.pk]


def test_the_cases_of_an_unknown_task_are_404(api, tester):
    assert api.as_user(tester).get("/api/tasks/99999/cases/").status_code == 404


def test_a_case_is_read_on_its_own(api, tester):
    case = CaseFactory(status="passed", exit_code=0)
    body = api.as_user(tester).get(f"/api/cases/{case.pk}/").json()
    assert body["name"] == case.name and body["exit_code"] == 0


def test_task_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    for task in TaskFactory.create_batch(30):
        CaseFactory.create_batch(2, task=task)
    api.as_user(tester)
    # user groups, count, one page of tasks joined to product, tool, user and report with case counts
    with django_assert_num_queries(3):
        api.get("/api/tasks/?page_size=5")
    with django_assert_num_queries(3):
        api.get("/api/tasks/?page_size=30")


def test_case_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    task = TaskFactory()
    CaseFactory.create_batch(40, task=task, node=NodeFactory())
    api.as_user(tester)
    # user groups, the task (its kept counts give the count), one page of cases joined to their node and failure
    # signature, the page's flaky marks, its muted marks
    with django_assert_num_queries(5):
        api.get(f"/api/tasks/{task.pk}/cases/?page_size=5")
    with django_assert_num_queries(5):
        api.get(f"/api/tasks/{task.pk}/cases/?page_size=40")


def test_report_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    ReportFactory.create_batch(30)
    api.as_user(tester)
    with django_assert_num_queries(3):
        api.get("/api/reports/?page_size=5")
    with django_assert_num_queries(3):
        api.get("/api/reports/?page_size=30")


def test_a_report_without_a_file_has_no_download(api, tester):
    report = ReportFactory()
    assert api.as_user(tester).get(f"/api/reports/{report.pk}/download/").status_code == 404


@pytest.mark.parametrize("name", ["bad\x01char", "nul\x00here", "two\nlines", "sep\u2028arator"])
def test_a_case_name_with_a_control_character_is_refused_naming_the_case(api, tester, name):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, ["fine", name])
    assert response.status_code == 400
    assert "case 1" in str(response.json()["cases"]) and "control character" in response.json()["detail"]
    assert not Task.objects.exists()


def test_a_task_name_with_a_control_character_is_refused(api, tester):
    product, tool, _ = capable_lab()
    response = api.as_user(tester).post(
        "/api/tasks/", {"name": "night\x07ly", "product": product.pk, "tool": tool.pk, "cases": ["a"]}
    )
    assert response.status_code == 400 and "name" in response.json()


def test_a_case_name_a_tool_would_read_as_an_option_is_refused(api, tester):
    product, tool, _ = capable_lab()
    response = _submit(api.as_user(tester), product, tool, ["fine", "--junitxml=/tmp/owned.xml"])
    assert (
        response.status_code == 400 and "option" in response.json()["detail"] and "case 1" in response.json()["detail"]
    )


def test_a_tool_that_ends_its_options_with_a_double_dash_may_allow_such_names(api, tester, lab_manager):
    product, tool, _ = capable_lab()
    patch = {"command_template": "{tool_path}/run -- {case}", "allow_option_like_cases": True}
    assert api.as_user(lab_manager).patch(f"/api/tools/{tool.pk}/", patch).status_code == 200
    assert _submit(api.as_user(tester), product, tool, ["--weird-but-fine"]).status_code == 201


def test_a_tasks_detail_breaks_its_cases_down_by_node_from_kept_counts(api, tester, django_assert_num_queries):
    task = TaskFactory()
    first, second = NodeFactory(name="lab-a"), NodeFactory(name="lab-b")
    CaseFactory.create_batch(2, task=task, node=first, status="passed")
    CaseFactory(task=task, node=second, status="failed")
    CaseFactory(task=task, node=second, status="running")
    api.as_user(tester)
    # user groups, the task with product, tool, user and report, its nodes' kept counts: no case is read
    with django_assert_num_queries(3):
        body = api.get(f"/api/tasks/{task.pk}/").json()
    assert body["by_node"] == [
        {"node": "lab-a", "total": 2, "running": 0, "passed": 2, "failed": 0, "error": 0, "cancelled": 0},
        {"node": "lab-b", "total": 2, "running": 1, "passed": 0, "failed": 1, "error": 0, "cancelled": 0},
    ]


@pytest.mark.parametrize("viewer", ["submitter", "another tester", "lab manager"])
def test_a_tasks_quick_representation_equals_drfs_field_by_field_one(rf, tester, viewer):
    from django.core.files.base import ContentFile
    from django.utils import timezone
    from rest_framework import serializers
    from rest_framework.request import Request

    from execution.api import TaskDetailSerializer, TemplateRunSerializer
    from tests.factories import LabManagerFactory, TesterFactory

    earlier = TaskFactory(created_by=tester)
    task = TaskFactory(created_by=tester, rerun_of=earlier, webhook_url="https://hooks.example.com/t")
    task.started_at = task.finished_at = timezone.now()
    task.save()
    CaseFactory.create_batch(2, task=task, status="passed", node=NodeFactory())
    CaseFactory(task=task, status="failed")
    report = ReportFactory(task=task, success_rate=66.67)
    report.file.save("r.xlsx", ContentFile(b"x"))
    user = {"submitter": tester, "another tester": TesterFactory(), "lab manager": LabManagerFactory()}[viewer]
    request = Request(rf.get("/api/tasks/"))
    request.user = user
    task = Task.objects.select_related("product", "tool", "created_by", "report").get(pk=task.pk)
    for serializer_class in (TaskDetailSerializer, TemplateRunSerializer):
        serializer = serializer_class(context={"request": request})
        quick = serializer.to_representation(task)
        assert quick == serializers.ModelSerializer.to_representation(serializer, task)
        assert list(quick) == list(serializer.fields)


def _waiting_lab():
    """A capable node with 2 slots, another user's priority-9 task with 7 cases to hand out, and a finished task
    whose cases took 2 s each."""
    product, tool, [node] = capable_lab(nodes=1)
    Node.objects.filter(pk=node.pk).update(slots=2)
    urgent = TaskFactory(product=product, tool=tool, priority=9, dispatched_at=timezone.now(), cases_to_hand_out=7)
    CaseFactory.create_batch(7, task=urgent)
    TaskFactory(product=product, tool=tool, status="finished", cases_timed=4, cases_seconds=8.0)
    return product, tool, node


def test_a_queued_task_says_how_many_cases_are_ahead_of_it_and_when_it_should_start(api, tester):
    product, tool, _ = _waiting_lab()
    mine = TaskFactory(product=product, tool=tool, priority=5, created_by=tester)
    CaseFactory.create_batch(3, task=mine)
    waiting = api.as_user(tester).get(f"/api/tasks/{mine.pk}/").json()["waiting"]
    assert (waiting["ahead"], waiting["ahead_outranking"], waiting["capable_slots"]) == (7, 7, 2)
    assert (waiting["mean_case_seconds"], waiting["starts_in_seconds"]) == (2.0, 7)


def test_a_queued_task_no_online_node_can_run_says_which_nodes_and_why(api, tester):
    product, tool, node = _waiting_lab()
    Node.objects.filter(pk=node.pk).update(status="maintenance", status_reason="new disk")
    mine = TaskFactory(product=product, tool=tool, created_by=tester)
    CaseFactory(task=mine)
    waiting = api.as_user(tester).get(f"/api/tasks/{mine.pk}/").json()["waiting"]
    assert f"{node.name} is maintenance: new disk" in waiting["reason"]
    assert waiting["starts_in_seconds"] is None and waiting["nodes"][0]["usable"] is False


def test_a_queued_task_shows_what_its_capable_nodes_run_now(api, tester):
    product, tool, node = _waiting_lab()
    busy = TaskFactory(product=product, tool=tool, name="nightly")
    CaseFactory.create_batch(2, task=busy, node=node, status="running")
    mine = TaskFactory(product=product, tool=tool, created_by=tester)
    CaseFactory(task=mine)
    [shown] = api.as_user(tester).get(f"/api/tasks/{mine.pk}/").json()["waiting"]["nodes"]
    assert shown["running"] == [{"task": busy.pk, "task_name": "nightly", "cases": 2}]


def test_a_task_with_no_case_queued_has_nothing_waiting(api, tester):
    task = TaskFactory(status="running")
    CaseFactory(task=task, node=NodeFactory(), status="running")
    assert api.as_user(tester).get(f"/api/tasks/{task.pk}/").json()["waiting"] is None


def test_why_a_task_waits_costs_a_bounded_number_of_queries(api, tester, django_assert_max_num_queries):
    product, tool, _ = _waiting_lab()
    mine = TaskFactory(product=product, tool=tool, created_by=tester)
    CaseFactory.create_batch(3, task=mine)
    api.as_user(tester)
    with django_assert_max_num_queries(10):
        assert api.get(f"/api/tasks/{mine.pk}/").json()["waiting"]["ahead"] == 7
