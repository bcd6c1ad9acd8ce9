import pytest

from nodes.models import Node, NodeProduct, NodeTool
from tests.factories import NodeFactory, NodeToolFactory, ProductToolFactory, ToolFactory

pytestmark = pytest.mark.django_db


def _installs(api, node, products):
    return api.put(f"/api/nodes/{node.pk}/installs/", {"products": products})


def test_a_node_with_an_invalid_ip_is_refused_naming_the_field(api, lab_manager):
    response = api.as_user(lab_manager).post("/api/nodes/", {"name": "n1", "ip": "300.1.1.1", "username": "u"})
    assert response.status_code == 400
    assert "ip" in response.json()


def test_a_node_with_a_port_out_of_range_is_refused(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.2", "username": "u", "ssh_port": 70000}
    )
    assert response.status_code == 400
    assert "ssh_port" in response.json()


def test_a_node_install_root_that_climbs_out_is_refused(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.2", "username": "u", "install_root": "/opt/../etc"}
    )
    assert response.status_code == 400
    assert "install_root" in response.json()


def test_a_lab_manager_records_what_is_installed_on_a_node(api, lab_manager):
    link = ProductToolFactory()
    node = NodeFactory(install_root="/opt/lab")
    response = _installs(
        api.as_user(lab_manager),
        node,
        [{"product": link.product.pk, "install_path": "calc", "tools": [{"tool": link.tool.pk}]}],
    )
    assert response.status_code == 200, response.json()
    product = response.json()["products"][0]
    assert product["install_path"] == "/opt/lab/calc"
    assert product["state"] == "installed"
    assert product["tools"][0]["install_path"] == f"/opt/lab/tools/{link.tool.slug}"
    assert list(Node.objects.capable_of(product=link.product, tool=link.tool)) == [node]


def test_putting_installs_replaces_the_previous_ones(api, lab_manager):
    old = NodeToolFactory()
    node = old.node_product.node
    link = ProductToolFactory()
    response = _installs(api.as_user(lab_manager), node, [{"product": link.product.pk, "tools": []}])
    assert response.status_code == 200
    assert list(NodeProduct.objects.filter(node=node).values_list("product", flat=True)) == [link.product.pk]
    assert not NodeTool.objects.filter(pk=old.pk).exists()


def test_installing_a_tool_not_linked_to_the_product_is_refused_with_what_to_do(api, lab_manager):
    link, stranger = ProductToolFactory(), ToolFactory()
    node = NodeFactory()
    response = _installs(
        api.as_user(lab_manager), node, [{"product": link.product.pk, "tools": [{"tool": stranger.pk}]}]
    )
    assert response.status_code == 400
    assert "not linked" in str(response.json()) and "link it" in str(response.json())
    assert not NodeProduct.objects.filter(node=node).exists()


@pytest.mark.parametrize("path", ["../etc", "/etc/passwd", "a/../../b", "/opt/lab"])
def test_an_install_path_outside_the_node_install_root_is_refused(api, lab_manager, path):
    link = ProductToolFactory()
    node = NodeFactory(install_root="/opt/lab")
    response = _installs(api.as_user(lab_manager), node, [{"product": link.product.pk, "install_path": path}])
    assert response.status_code == 400
    assert "/opt/lab" in str(response.json())
    assert not NodeProduct.objects.filter(node=node).exists()


def test_listing_a_product_twice_is_refused(api, lab_manager):
    link = ProductToolFactory()
    node = NodeFactory()
    response = _installs(api.as_user(lab_manager), node, [{"product": link.product.pk}, {"product": link.product.pk}])
    assert response.status_code == 400
    assert "twice" in str(response.json())


def test_installs_naming_an_unknown_product_are_refused_naming_the_id(api, lab_manager):
    node = NodeFactory()
    response = _installs(api.as_user(lab_manager), node, [{"product": 424242}])
    assert response.status_code == 400
    assert "424242" in str(response.json())


def test_installs_that_are_not_a_list_are_refused(api, lab_manager):
    node = NodeFactory()
    response = api.as_user(lab_manager).put(f"/api/nodes/{node.pk}/installs/", {"products": "calc"})
    assert response.status_code == 400


def test_a_lab_manager_puts_a_node_in_maintenance_with_a_reason(api, lab_manager):
    node = NodeFactory()
    response = api.as_user(lab_manager).post(
        f"/api/nodes/{node.pk}/maintenance/", {"enabled": True, "reason": "disk swap"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == ("maintenance", "disk swap")


def test_ending_maintenance_waits_for_the_workers_next_heartbeat(api, lab_manager):
    node = NodeFactory(status=Node.Status.MAINTENANCE)
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/maintenance/", {"enabled": False}, format="json")
    assert response.json()["status"] == "offline"


def test_ending_maintenance_of_a_node_not_in_it_is_a_conflict(api, lab_manager):
    node = NodeFactory(status=Node.Status.ONLINE)
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/maintenance/", {"enabled": False}, format="json")
    assert response.status_code == 409
    assert "not in maintenance" in response.json()["detail"]


def test_a_nodes_status_cannot_be_written_directly(api, lab_manager):
    node = NodeFactory(status=Node.Status.ONLINE)
    api.as_user(lab_manager).patch(f"/api/nodes/{node.pk}/", {"status": "maintenance"}, format="json")
    node.refresh_from_db()
    assert node.status == Node.Status.ONLINE


def test_a_tester_cannot_put_a_node_in_maintenance(api, tester):
    node = NodeFactory()
    response = api.as_user(tester).post(f"/api/nodes/{node.pk}/maintenance/", {"enabled": True}, format="json")
    assert response.status_code == 403


def test_nodes_are_filtered_by_installed_tool(api, tester):
    install = NodeToolFactory()
    NodeFactory()
    response = api.as_user(tester).get(f"/api/nodes/?installs__tools__tool={install.tool.pk}")
    assert [node["name"] for node in response.json()["results"]] == [install.node_product.node.name]


def test_node_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    NodeFactory.create_batch(30)
    api.as_user(tester)
    # user groups, count, one page of nodes
    with django_assert_num_queries(3):
        api.get("/api/nodes/?page_size=5")
    with django_assert_num_queries(3):
        api.get("/api/nodes/?page_size=30")


def test_recording_an_install_again_clears_its_failure(api, lab_manager):
    install = NodeToolFactory(state="failed", state_message="tool missing")
    node_product = install.node_product
    ProductToolFactory(product=node_product.product, tool=install.tool)
    response = _installs(
        api.as_user(lab_manager),
        node_product.node,
        [
            {
                "product": node_product.product.pk,
                "install_path": node_product.install_path,
                "tools": [{"tool": install.tool.pk, "install_path": install.install_path}],
            }
        ],
    )
    assert response.status_code == 200
    install.refresh_from_db()
    assert (install.state, install.state_message) == ("installed", "")


def test_a_private_key_is_write_only_and_stored_encrypted(api, lab_manager, tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "key"], check=True)
    private_key = (tmp_path / "key").read_text()
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.2", "username": "u", "private_key": private_key}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["has_private_key"] is True and "private_key" not in response.json()
    node = Node.objects.get(name="n1")
    assert node.get_private_key() == private_key and private_key not in node.private_key_encrypted


def test_a_private_key_that_is_not_one_is_refused_saying_what_to_paste(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.2", "username": "u", "private_key": "hello"}, format="json"
    )
    assert response.status_code == 400
    assert "OpenSSH or PEM" in response.json()["private_key"][0]


def test_a_check_is_queued_as_an_operation_on_the_node(api, lab_manager):
    node = NodeFactory()
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/check/")
    assert response.status_code == 202
    assert (response.json()["kind"], response.json()["state"], response.json()["node"]) == ("check", "queued", node.pk)


def test_asking_twice_before_it_starts_queues_one_operation(api, lab_manager):
    node = NodeFactory()
    first = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/deploy-worker/").json()
    second = api.post(f"/api/nodes/{node.pk}/deploy-worker/").json()
    assert first["id"] == second["id"]


def test_a_tester_cannot_check_or_deploy(api, tester):
    node = NodeFactory()
    api.as_user(tester)
    assert api.post(f"/api/nodes/{node.pk}/check/").status_code == 403
    assert api.post(f"/api/nodes/{node.pk}/deploy-worker/").status_code == 403


def test_applying_installs_on_a_node_not_managed_over_ssh_says_so(api, lab_manager):
    node = NodeFactory(managed=False)
    response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/apply-installs/")
    assert response.status_code == 400
    assert "not managed over SSH" in response.json()["detail"]


def test_installs_on_a_managed_node_wait_for_the_machine(api, lab_manager):
    link = ProductToolFactory()
    node = NodeFactory(managed=True)
    body = {"products": [{"product": link.product.pk, "tools": [{"tool": link.tool.pk}]}]}
    response = api.as_user(lab_manager).put(f"/api/nodes/{node.pk}/installs/", body, format="json")
    assert response.json()["products"][0]["state"] == "pending"
    assert node.operations.get().kind == "install"


def test_node_operation_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    from nodes.services import operation_request

    for node in NodeFactory.create_batch(12):
        operation_request(node=node, kind="check")
    api.as_user(tester)
    # user groups, count, one page of operations with their nodes and users
    with django_assert_num_queries(3):
        api.get("/api/node-operations/?page_size=3")
    with django_assert_num_queries(3):
        api.get("/api/node-operations/?page_size=12")


@pytest.mark.parametrize("path", ["worker", "work/x", ".incoming", "manifest.json"])
def test_an_install_path_testhub_keeps_for_itself_is_refused(api, lab_manager, path):
    link = ProductToolFactory()
    node = NodeFactory(install_root="/opt/lab")
    response = _installs(api.as_user(lab_manager), node, [{"product": link.product.pk, "install_path": path}])
    assert response.status_code == 400
    assert "TestHub's own" in str(response.json())


@pytest.mark.parametrize("root", ["/opt/my lab", "/opt/%h", "/opt/lab\nExecStartPre=/bin/x"])
def test_an_install_root_that_would_break_a_command_line_is_refused(api, lab_manager, root):
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.2", "username": "u", "install_root": root}, format="json"
    )
    assert response.status_code == 400
    assert "install_root" in response.json()
