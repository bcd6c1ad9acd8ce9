from unittest import mock

import pytest
from django.test import Client

from execution.models import TaskTemplate
from nodes.admin import NodeForm
from nodes.models import Node, NodeOperation, NodeTool, SSHStatus
from tests.factories import (
    CaseFactory,
    NodeFactory,
    NodeToolFactory,
    ProductTestResultFactory,
    ProductToolFactory,
    ReportFactory,
    TaskFactory,
    ToolFactory,
)

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "catalog/product": lambda: ProductToolFactory(),
    "catalog/testtool": lambda: ToolFactory(),
    "catalog/producttool": lambda: ProductToolFactory(),
    "catalog/producttestresult": lambda: ProductTestResultFactory(),
    "nodes/node": lambda: NodeToolFactory(),
    "nodes/nodeproduct": lambda: NodeToolFactory(),
    "execution/task": lambda: CaseFactory(node=NodeFactory()),
    "execution/case": lambda: CaseFactory(node=NodeFactory()),
    "reporting/report": lambda: ReportFactory(),
}


@pytest.fixture
def admin_client_of(lab_manager):
    client = Client()
    client.force_login(lab_manager)
    return client


def _queries_for(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_an_admin_list_page_runs_the_same_queries_for_3_rows_as_for_20(
    admin_client_of, model, django_assert_max_num_queries
):
    url = f"/admin/{model}/"
    for _ in range(3):
        CHANGELISTS[model]()
    few = _queries_for(admin_client_of, url)
    for _ in range(17):
        CHANGELISTS[model]()
    assert _queries_for(admin_client_of, url) == few


@pytest.mark.parametrize("model", CHANGELISTS)
def test_an_admin_list_page_searches(admin_client_of, model):
    CHANGELISTS[model]()
    assert admin_client_of.get(f"/admin/{model}/?q=x").status_code == 200


def _node_form(target, **inline):
    data = {
        "name": target.name,
        "ip": target.ip,
        "ssh_port": target.ssh_port,
        "username": target.username,
        "password": "",
        "install_root": target.install_root,
        "slots": target.slots,
        "installs-TOTAL_FORMS": "1",
        "installs-INITIAL_FORMS": "0",
        "installs-MIN_NUM_FORMS": "0",
        "installs-MAX_NUM_FORMS": "1000",
        "operations-TOTAL_FORMS": "0",
        "operations-INITIAL_FORMS": "0",
        "operations-MIN_NUM_FORMS": "0",
        "operations-MAX_NUM_FORMS": "0",
    }
    data.update({f"installs-0-{key}": value for key, value in inline.items()})
    return data


def test_the_node_page_installs_a_product_with_the_tools_picked_for_it(admin_client_of):
    link = ProductToolFactory()
    node = NodeFactory(install_root="/opt/lab")
    response = admin_client_of.post(
        f"/admin/nodes/node/{node.pk}/change/",
        _node_form(node, product=link.product.pk, install_path="", tools=[link.tool.pk], node=node.pk),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    install = NodeTool.objects.get(node_product__node=node)
    assert install.tool == link.tool
    assert install.node_product.install_path == f"/opt/lab/products/{link.product.slug}"


def test_the_node_page_refuses_a_tool_not_linked_to_the_product(admin_client_of):
    link, stranger = ProductToolFactory(), ToolFactory()
    node = NodeFactory()
    response = admin_client_of.post(
        f"/admin/nodes/node/{node.pk}/change/",
        _node_form(node, product=link.product.pk, tools=[stranger.pk], node=node.pk),
    )
    assert response.status_code == 200
    assert "not linked" in response.content.decode()
    assert not NodeTool.objects.exists()


def test_the_node_page_refuses_an_install_path_outside_the_root(admin_client_of):
    link = ProductToolFactory()
    node = NodeFactory(install_root="/opt/lab")
    response = admin_client_of.post(
        f"/admin/nodes/node/{node.pk}/change/",
        _node_form(node, product=link.product.pk, install_path="../../etc", node=node.pk),
    )
    assert response.status_code == 200
    assert "inside" in response.content.decode() or "must not contain" in response.content.decode()


def test_the_node_page_never_shows_the_password(admin_client_of):
    node = NodeFactory()
    node.set_password("NeverShown-77")
    node.save()
    page = admin_client_of.get(f"/admin/nodes/node/{node.pk}/change/").content.decode()
    assert "NeverShown-77" not in page and node.password_encrypted not in page


def test_the_task_page_shows_progress_and_its_cases(admin_client_of):
    task = TaskFactory()
    CaseFactory(task=task, name="test_login", status="passed")
    CaseFactory(task=task, name="test_logout", status="queued")
    page = admin_client_of.get(f"/admin/execution/task/{task.pk}/change/").content.decode()
    assert "1/2 (50%)" in page and "test_login" in page and "test_logout" in page


def test_a_tester_sees_tasks_in_admin_but_cannot_change_the_lab(client, tester):
    tester.is_staff = True
    tester.save()
    client.force_login(tester)
    assert client.get("/admin/execution/task/").status_code == 200
    assert client.get("/admin/nodes/node/add/").status_code == 403


@pytest.mark.parametrize(
    ("action", "kind"),
    [("check_machine", "check"), ("deploy_worker", "deploy"), ("apply_installs", "install")],
)
def test_a_node_list_action_queues_an_operation_per_node(admin_client_of, action, kind):
    nodes = NodeFactory.create_batch(2, managed=True)
    response = admin_client_of.post(
        "/admin/nodes/node/", {"action": action, "_selected_action": [node.pk for node in nodes]}
    )
    assert response.status_code == 302
    assert sorted(NodeOperation.objects.filter(kind=kind).values_list("node_id", flat=True)) == [n.pk for n in nodes]


def test_the_maintenance_actions_take_a_node_out_of_service_and_back(admin_client_of):
    node = NodeFactory()
    admin_client_of.post("/admin/nodes/node/", {"action": "start_maintenance", "_selected_action": [node.pk]})
    node.refresh_from_db()
    assert node.status == Node.Status.MAINTENANCE
    admin_client_of.post("/admin/nodes/node/", {"action": "end_maintenance", "_selected_action": [node.pk]})
    node.refresh_from_db()
    assert node.status == Node.Status.OFFLINE


def test_the_node_page_shows_what_the_last_check_found(admin_client_of):
    node = NodeFactory(ssh_status=SSHStatus.AUTH_FAILED, ssh_message="refused the login of 'lab'")
    page = admin_client_of.get(f"/admin/nodes/node/{node.pk}/change/").content.decode()
    assert "Login refused" in page and "refused the login of" in page


def test_saving_a_node_page_writes_only_what_the_page_changed(admin_client_of):
    """A heartbeat recorded while the page is being saved keeps its word on the node's status."""
    node = NodeFactory(status=Node.Status.OFFLINE, slots=1)
    form = {**_node_form(node), "slots": 4, "installs-TOTAL_FORMS": "0"}

    def heartbeat_meanwhile(page_form):
        Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE, status_reason="")
        return page_form.cleaned_data.get("private_key", "")

    with mock.patch.object(NodeForm, "clean_private_key", heartbeat_meanwhile):
        response = admin_client_of.post(f"/admin/nodes/node/{node.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    node.refresh_from_db()
    assert (node.slots, node.status) == (4, Node.Status.ONLINE)


def test_a_template_saved_in_admin_meets_the_case_name_rules_of_the_api(admin_client_of):
    link = ProductToolFactory()
    form = {"name": "nightly", "product": link.product.pk, "tool": link.tool.pk, "priority": 5, "cron": ""}
    response = admin_client_of.post("/admin/execution/tasktemplate/add/", {**form, "cases": "ok\nbad\x01name"})
    assert response.status_code == 200
    assert "U+0001" in response.content.decode()
    assert not TaskTemplate.objects.exists()


def test_a_template_saved_in_admin_must_use_one_of_the_products_tools(admin_client_of):
    link, stranger = ProductToolFactory(), ToolFactory()
    form = {"name": "nightly", "product": link.product.pk, "tool": stranger.pk, "priority": 5, "cases": "a"}
    response = admin_client_of.post("/admin/execution/tasktemplate/add/", form)
    assert response.status_code == 200
    assert "not linked" in response.content.decode()
    assert not TaskTemplate.objects.exists()


def test_a_template_saved_in_admin_gets_its_beat_entry(admin_client_of):
    link = ProductToolFactory()
    form = {"name": "nightly", "product": link.product.pk, "tool": link.tool.pk, "priority": 5, "cases": " a \r\n\n"}
    response = admin_client_of.post("/admin/execution/tasktemplate/add/", {**form, "cron": "0 3 * * *"})
    assert response.status_code == 302, response.content.decode()[:2000]
    template = TaskTemplate.objects.get()
    assert (template.cases, template.periodic_task.crontab.hour) == (["a"], "3")


def test_a_templates_cases_are_edited_one_per_line_in_admin(admin_client_of):
    link = ProductToolFactory()
    template = TaskTemplate.objects.create(name="nightly", product=link.product, tool=link.tool, cases=["a", "b"])
    page = admin_client_of.get(f"/admin/execution/tasktemplate/{template.pk}/change/").content.decode()
    assert "\na\nb</textarea>" in page
