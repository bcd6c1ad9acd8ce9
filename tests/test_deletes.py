"""Deleting what is in use answers 409 saying what uses it, or becomes an orderly removal the API reports."""

from unittest import mock

import pytest
from django.test import Client

from catalog.models import Product, TestTool
from nodes.models import Node, NodeOperation
from tests.factories import CaseFactory, NodeFactory, ProductFactory, capable_lab
from tests.test_liveness import heartbeat, record

pytestmark = pytest.mark.django_db


def test_deleting_a_product_installed_on_a_node_is_refused_naming_the_node(api, lab_manager):
    product, _, (node,) = capable_lab()
    response = api.as_user(lab_manager).delete(f"/api/products/{product.pk}/")
    assert response.status_code == 409
    assert f"on {node.name}" in response.json()["detail"]
    assert Product.objects.filter(pk=product.pk).exists() and node.installs.exists()


def test_deleting_a_tool_installed_on_a_node_is_refused(api, lab_manager):
    _, tool, _ = capable_lab()
    response = api.as_user(lab_manager).delete(f"/api/tools/{tool.pk}/")
    assert response.status_code == 409
    assert TestTool.objects.filter(pk=tool.pk).exists()


def test_deleting_a_product_used_nowhere_works(api, lab_manager):
    product = ProductFactory()
    assert api.as_user(lab_manager).delete(f"/api/products/{product.pk}/").status_code == 204


def test_deleting_a_node_that_runs_a_case_is_refused_naming_the_task(api, lab_manager):
    node = NodeFactory()
    case = CaseFactory(node=node, status="running")
    response = api.as_user(lab_manager).delete(f"/api/nodes/{node.pk}/")
    assert response.status_code == 409
    assert f"#{case.task_id}" in response.json()["detail"] and "maintenance" in response.json()["detail"]
    assert Node.objects.filter(pk=node.pk).exists()


def test_deleting_an_idle_unmanaged_node_tells_its_worker_to_take_nothing(
    api, lab_manager, django_capture_on_commit_callbacks
):
    _, _, (node,) = capable_lab()
    with mock.patch("messaging.broker.cancel_consumer") as cancel, django_capture_on_commit_callbacks(execute=True):
        assert api.as_user(lab_manager).delete(f"/api/nodes/{node.pk}/").status_code == 204
    assert not Node.objects.filter(pk=node.pk).exists()
    assert cancel.call_count == 1


def test_a_removed_nodes_worker_still_running_is_told_to_take_nothing(django_capture_on_commit_callbacks):
    ghost = Node(name="ghost")  # its row is gone; its worker still heartbeats, reading a capability queue
    with mock.patch("messaging.broker.cancel_consumer") as cancel:
        record([heartbeat(ghost, queues=["cap.calc-1.0.pytest-8", "node.ghost"])], django_capture_on_commit_callbacks)
    cancel.assert_called_once_with(node="ghost", queue="cap.calc-1.0.pytest-8")


def test_deleting_a_managed_node_with_a_worker_deployed_retires_it_over_ssh_first(api, lab_manager):
    node = NodeFactory(managed=True, worker_version="1.0.0+abc")
    response = api.as_user(lab_manager).delete(f"/api/nodes/{node.pk}/")
    assert response.status_code == 202
    assert response.json()["kind"] == "retire" and response.json()["node_name"] == node.name
    node.refresh_from_db()
    assert node.status == Node.Status.RETIRING and not node.takes_work


def test_a_node_being_retired_takes_no_other_operation(api, lab_manager):
    node = NodeFactory(managed=True, status=Node.Status.RETIRING)
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/deploy-worker/")
    assert response.status_code == 409 and "being removed" in response.json()["detail"]


def test_a_node_whose_machine_is_gone_can_be_deleted_by_force(api, lab_manager):
    node = NodeFactory(managed=True, worker_version="1.0.0+abc", status=Node.Status.RETIRING)
    assert api.as_user(lab_manager).delete(f"/api/nodes/{node.pk}/?force=true").status_code == 204
    assert not Node.objects.filter(pk=node.pk).exists()


def test_admin_refuses_to_delete_a_node_that_runs_a_case_saying_why(lab_manager):
    node = NodeFactory()
    CaseFactory(node=node, status="running")
    client = Client()
    client.force_login(lab_manager)
    response = client.post(f"/admin/nodes/node/{node.pk}/delete/", {"post": "yes"}, follow=True)
    assert "cannot be removed yet" in response.content.decode()
    assert Node.objects.filter(pk=node.pk).exists()


def test_an_operation_outlives_its_node(lab_manager):
    node = NodeFactory()
    operation = NodeOperation.objects.create(node=node, node_name=node.name, kind="check")
    node.delete()
    operation.refresh_from_db()
    assert operation.node is None and operation.node_name == node.name
