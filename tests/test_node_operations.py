"""Checks and installs over SSH, against real sshd processes (tests/machines.py), run in this process.

The API queues an operation; here the test carries it out with the same function the control worker calls.
"""

import io
import json
import logging
import tarfile
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from nodes import remote, services, ssh
from nodes.models import InstallState, Node, NodeOperation, NodeProduct, NodeTool, SSHStatus
from tests.factories import ProductToolFactory
from tests.lab import LABTOOL
from worker import manifest


@pytest.fixture(autouse=True)
def _short_ssh_timeouts(settings):
    settings.TESTHUB_SSH_CONNECT_TIMEOUT = 2


def node_for(machine, *, name: str = "", **fields) -> Node:
    credentials = {"password": machine.password}
    credentials.update(fields.pop("credentials", {}))
    return services.node_create(
        name=name or machine.name,
        ip=machine.host,
        ssh_port=machine.port,
        username=machine.username,
        install_root=f"{machine.home}/testhub",
        **credentials,
        **fields,
    )


def carry_out(api, user, node: Node, action: str) -> NodeOperation:
    response = api.as_user(user).post(f"/api/nodes/{node.pk}/{action}/")
    assert response.status_code == 202, response.content
    remote.operation_run(operation_id=response.json()["id"])
    node.refresh_from_db()
    return NodeOperation.objects.get(pk=response.json()["id"])


def test_a_check_records_the_machines_facts(api, lab_manager, machines):
    node = node_for(machines[0])
    operation = carry_out(api, lab_manager, node, "check")
    assert operation.state == NodeOperation.State.SUCCEEDED, operation.message
    assert node.ssh_status == SSHStatus.OK and node.checked_at is not None
    assert node.facts["os"] and node.facts["python"].startswith("3.")
    assert node.facts["cpus"] > 0 and node.facts["memory_kb"] > 0 and node.facts["disk_free_kb"] > 0
    assert "CPUs" in operation.message and node.facts["python"] in operation.message


def test_the_first_contact_pins_the_machines_host_key(api, lab_manager, machines):
    node = node_for(machines[0])
    carry_out(api, lab_manager, node, "check")
    assert node.host_key == machines[0].host_key_line()


def test_a_check_logs_in_with_a_private_key(api, lab_manager, machines):
    node = node_for(machines[1], credentials={"password": "", "private_key": machines[1].private_key})
    operation = carry_out(api, lab_manager, node, "check")
    assert operation.state == NodeOperation.State.SUCCEEDED, operation.message


def test_a_wrong_password_leaves_the_node_saying_so(api, lab_manager, machines):
    node = node_for(machines[0], credentials={"password": "not-the-password"})
    operation = carry_out(api, lab_manager, node, "check")
    assert operation.state == NodeOperation.State.FAILED
    assert node.ssh_status == SSHStatus.AUTH_FAILED
    assert "correct the username, password or key" in node.ssh_message


@pytest.mark.parametrize(
    ("address", "status"),
    [("refused_address", SSHStatus.REFUSED), ("silent_address", SSHStatus.TIMEOUT)],
)
def test_a_machine_that_cannot_be_reached_leaves_the_node_saying_why(api, lab_manager, machines, address, status):
    host, port = getattr(machines, address)()
    node = services.node_create(name="away", ip=host, ssh_port=port, username="lab", password="x")
    operation = carry_out(api, lab_manager, node, "check")
    assert (operation.state, node.ssh_status) == (NodeOperation.State.FAILED, status)
    assert node.ssh_message == operation.message


def test_a_changed_host_key_is_refused_until_a_lab_manager_accepts_it(api, lab_manager, fresh_machine):
    node = node_for(fresh_machine)
    carry_out(api, lab_manager, node, "check")
    fresh_machine.rotate_host_key()

    refused = carry_out(api, lab_manager, node, "check")
    assert (refused.state, node.ssh_status) == (NodeOperation.State.FAILED, SSHStatus.HOST_KEY_CHANGED)
    assert node.offered_host_key == fresh_machine.host_key_line()
    shown = api.get(f"/api/nodes/{node.pk}/").json()["offered_host_key_fingerprint"]
    accepted = api.post(f"/api/nodes/{node.pk}/accept-host-key/", {"fingerprint": shown}, format="json")
    assert accepted.status_code == 200
    assert carry_out(api, lab_manager, node, "check").state == NodeOperation.State.SUCCEEDED


def test_accepting_a_host_key_other_than_the_offered_one_is_refused(api, lab_manager, fresh_machine):
    node = node_for(fresh_machine)
    carry_out(api, lab_manager, node, "check")
    fresh_machine.rotate_host_key()
    carry_out(api, lab_manager, node, "check")
    response = api.post(
        f"/api/nodes/{node.pk}/accept-host-key/", {"fingerprint": ssh.fingerprint(node.host_key)}, format="json"
    )
    assert response.status_code == 409
    node.refresh_from_db()
    assert node.host_key != fresh_machine.host_key_line()


def test_a_passing_check_ends_a_quarantine(api, lab_manager, machines):
    node = node_for(machines[0])
    Node.objects.filter(pk=node.pk).update(status=Node.Status.QUARANTINED, infra_error_streak=3)
    carry_out(api, lab_manager, node, "check")
    assert (node.status, node.infra_error_streak) == (Node.Status.OFFLINE, 0)


def test_a_check_fails_an_install_whose_folder_is_gone(api, lab_manager, machines):
    node = node_for(machines[0], managed=False)
    link = ProductToolFactory()
    services.node_installs_set(node=node, installs=[services.ProductInstall(product=link.product)])
    operation = carry_out(api, lab_manager, node, "check")
    install = NodeProduct.objects.get(node=node)
    assert install.state == InstallState.FAILED and "missing on the machine" in install.state_message
    assert operation.state == NodeOperation.State.FAILED and "install them again" in operation.message


def test_no_credential_reaches_a_log_or_a_task_message(
    api, lab_manager, machines, caplog, django_capture_on_commit_callbacks
):
    node = node_for(machines[0])
    with mock.patch("nodes.tasks.run_operation.apply_async") as send, django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(lab_manager).post(f"/api/nodes/{node.pk}/check/")
    send.assert_called_once_with((response.json()["id"],), retry=False)
    with caplog.at_level(logging.DEBUG):
        remote.operation_run(operation_id=response.json()["id"])
        services.node_update(node=node, password="Wrong-Secret-99")
        remote.operation_run(operation_id=services.operation_request(node=node, kind="check").pk)
    assert caplog.records  # paramiko and fabric did log at DEBUG
    assert machines[0].password not in caplog.text and "Wrong-Secret-99" not in caplog.text


# --- installs -----------------------------------------------------------------------------------------


def package(files: dict[str, str | bytes], name: str = "calc-1.0.tar.gz") -> SimpleUploadedFile:
    """A .tar.gz of `files`; one starting with #! is made executable, as a tool's script would be packed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return SimpleUploadedFile(name, buffer.getvalue())


@pytest.fixture
def calc_with_labtool():
    link = ProductToolFactory(product__name="calc", product__version="1.0", tool__name="labtool", tool__version="1")
    link.product.file.save("calc-1.0.tar.gz", package({"VERSION": "calc 1.0\n"}))
    link.tool.file.save("labtool-1.tar.gz", package({"labtool": LABTOOL.read_bytes()}, name="labtool-1.tar.gz"))
    return link


def put_installs(api, user, node, link) -> None:
    body = {"products": [{"product": link.product.pk, "tools": [{"tool": link.tool.pk}]}]} if link else {"products": []}
    response = api.as_user(user).put(f"/api/nodes/{node.pk}/installs/", body, format="json")
    assert response.status_code == 200, response.content


def test_installs_are_copied_and_unpacked_on_the_machine(api, lab_manager, machines, calc_with_labtool):
    node = node_for(machines[0])
    put_installs(api, lab_manager, node, calc_with_labtool)
    assert NodeProduct.objects.get(node=node).state == InstallState.PENDING
    operation = NodeOperation.objects.get(node=node, kind=NodeOperation.Kind.INSTALL)
    remote.operation_run(operation_id=operation.pk)

    operation.refresh_from_db()
    assert operation.state == NodeOperation.State.SUCCEEDED, operation.message
    product, tool = NodeProduct.objects.get(node=node), NodeTool.objects.get(node_product__node=node)
    assert (product.state, tool.state) == (InstallState.INSTALLED, InstallState.INSTALLED)
    root = machines[0].home / "testhub"
    assert (root / "products/calc-1.0/VERSION").read_text() == "calc 1.0\n"
    assert (root / "tools/labtool-1/labtool").stat().st_mode & 0o111  # a script stays runnable
    paths = manifest.resolve(
        root / "manifest.json", product="calc", product_version="1.0", tool="labtool", tool_version="1"
    )
    assert paths.product_path == product.install_path and paths.tool_path == tool.install_path


def test_uninstalling_removes_the_files_and_the_manifest_entry(api, lab_manager, machines, calc_with_labtool):
    node = node_for(machines[1])
    put_installs(api, lab_manager, node, calc_with_labtool)
    remote.operation_run(operation_id=NodeOperation.objects.get(node=node).pk)
    put_installs(api, lab_manager, node, None)
    assert NodeProduct.objects.get(node=node).state == InstallState.REMOVING
    remote.operation_run(operation_id=NodeOperation.objects.filter(node=node).first().pk)

    root = machines[1].home / "testhub"
    assert not NodeProduct.objects.filter(node=node).exists()
    assert not (root / "products/calc-1.0").exists() and not (root / "tools/labtool-1").exists()
    assert json.loads((root / "manifest.json").read_text()) == {"installs": []}


def test_a_broken_package_fails_its_install_with_the_reason(api, lab_manager, machines, calc_with_labtool):
    calc_with_labtool.product.file.save("calc-1.0.tar.gz", SimpleUploadedFile("calc-1.0.tar.gz", b"not a tarball"))
    node = node_for(machines[0], name="broken-package")
    put_installs(api, lab_manager, node, calc_with_labtool)
    remote.operation_run(operation_id=NodeOperation.objects.get(node=node).pk)

    product, tool = NodeProduct.objects.get(node=node), NodeTool.objects.get(node_product__node=node)
    assert product.state == InstallState.FAILED and "tar" in product.state_message
    assert tool.state == InstallState.INSTALLED
    assert NodeOperation.objects.get(node=node).state == NodeOperation.State.FAILED


def test_installing_on_an_unreachable_machine_fails_every_pending_install(
    api, lab_manager, machines, calc_with_labtool
):
    host, port = machines.refused_address()
    node = services.node_create(name="away", ip=host, ssh_port=port, username="lab", password="x")
    put_installs(api, lab_manager, node, calc_with_labtool)
    remote.operation_run(operation_id=NodeOperation.objects.get(node=node).pk)
    product = NodeProduct.objects.get(node=node)
    assert product.state == InstallState.FAILED and "refused the connection" in product.state_message


def test_an_operation_waits_while_another_holds_the_machine(db, machines):
    from messaging import broker

    node = node_for(machines[0], name="busy")
    operation = services.operation_request(node=node, kind="check")
    lock = broker.machine_lock(node_id=node.pk, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert remote.operation_run(operation_id=operation.pk) is remote.Outcome.MACHINE_BUSY
    finally:
        lock.release()
    operation.refresh_from_db()
    assert operation.state == NodeOperation.State.QUEUED
    assert remote.operation_run(operation_id=operation.pk) is remote.Outcome.DONE


def test_an_install_whose_control_worker_died_ends_failed_and_can_be_retried(db, settings):
    from datetime import timedelta

    from django.utils import timezone

    link = ProductToolFactory()
    node = services.node_create(name="n", ip="127.0.0.2", username="lab", password="x")
    services.node_installs_set(node=node, installs=[services.ProductInstall(product=link.product)])
    NodeProduct.objects.filter(node=node).update(state=InstallState.INSTALLING)
    long_ago = timezone.now() - timedelta(days=1)
    NodeOperation.objects.filter(node=node).update(state=NodeOperation.State.RUNNING, started_at=long_ago)
    services.operations_reconcile(now=timezone.now())
    assert NodeOperation.objects.get(node=node).state == NodeOperation.State.FAILED
    assert NodeProduct.objects.get(node=node).state == InstallState.FAILED


def test_a_reinstall_copies_a_reuploaded_package_again(api, lab_manager, machines, calc_with_labtool):
    node = node_for(machines[0], name="reinstalled")
    put_installs(api, lab_manager, node, calc_with_labtool)
    remote.operation_run(operation_id=NodeOperation.objects.get(node=node).pk)
    calc_with_labtool.product.file.save("calc-1.0.tar.gz", package({"VERSION": "calc 1.0 fixed\n"}))
    response = api.post(f"/api/nodes/{node.pk}/apply-installs/", {"reinstall": True}, format="json")
    remote.operation_run(operation_id=response.json()["id"])
    assert (machines[0].home / "testhub/products/calc-1.0/VERSION").read_text() == "calc 1.0 fixed\n"


def test_rotating_the_encryption_keys_keeps_machines_reachable_by_key_and_password(api, lab_manager, machines, keys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old_key)
    by_key = node_for(machines[0], credentials={"password": "", "private_key": machines[0].private_key})
    by_password = node_for(machines[1])
    assert carry_out(api, lab_manager, by_key, "check").state == NodeOperation.State.SUCCEEDED

    keys(new_key, old_key)
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    keys(new_key)  # the old key is gone for good
    for node in (by_key, by_password):
        operation = carry_out(api, lab_manager, node, "check")
        assert operation.state == NodeOperation.State.SUCCEEDED, operation.message
