"""A lab managed only over SSH: two simulated machines (real sshd, their own users) and a real control worker.

The control worker checks them, installs the product and the tool there, deploys the worker, runs a
task on both, and uninstalls; workers are killed and redeployed while cases run.
"""

import os
import shutil
import signal

import pytest
import redis
from django.conf import settings

from execution.models import Case, Task
from nodes.models import InstallState, Node, NodeOperation, NodeProduct
from nodes.worker_release import release_name
from reporting.models import Report
from testhub.celery import app
from tests.lab import LABTOOL, wait_for
from tests.test_node_operations import node_for, package
from worker.protocol import worker_hostname

pytestmark = pytest.mark.slow


@pytest.fixture
def ssh_lab(lab, machines):
    """The lab's control worker, its product and tool with files to install, and machines cleaned up after."""
    lab.product.file.save("calc-1.0.tar.gz", package({"VERSION": "calc 1.0\n"}))
    lab.tool.file.save("labtool-1.tar.gz", package({"labtool": LABTOOL.read_bytes()}, name="labtool-1.tar.gz"))
    lab.start_control(TESTHUB_SSH_CONNECT_TIMEOUT="3", TESTHUB_DEPLOY_VERIFY_SECONDS="60")
    yield lab
    for machine in machines:
        machine.kill_user_processes()  # the deployed workers and their supervisors
        # Everything but the built worker releases (their venvs), which the next test's deploy reuses.
        for path in (machine.home / "testhub").glob("*"):
            if path.name != "worker":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in (machine.home / "testhub" / "worker").glob("*"):
            if path.name != "releases":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def operate(api, node: Node, action: str, *, timeout: float = 90) -> NodeOperation:
    response = api.post(f"/api/nodes/{node.pk}/{action}/")
    assert response.status_code == 202, response.content
    return finished(response.json()["id"], timeout=timeout)


def finished(operation_id: int, *, timeout: float = 90) -> NodeOperation:
    ended = (NodeOperation.State.SUCCEEDED, NodeOperation.State.FAILED)
    operation = wait_for(
        lambda: NodeOperation.objects.filter(pk=operation_id, state__in=ended).first(),
        timeout=timeout,
        message=f"operation {operation_id} finished",
    )
    assert operation.state == NodeOperation.State.SUCCEEDED, operation.message
    return operation


def install(api, lab, node: Node, *, products: list) -> None:
    response = api.put(f"/api/nodes/{node.pk}/installs/", {"products": products}, format="json")
    assert response.status_code == 200, response.content
    finished(NodeOperation.objects.filter(node=node, kind=NodeOperation.Kind.INSTALL).first().pk)


def calc_with_labtool(lab) -> list:
    return [{"product": lab.product.pk, "tools": [{"tool": lab.tool.pk}]}]


def submit(api, lab, cases: list[str]) -> Task:
    body = {"name": "ssh lab run", "product": lab.product.pk, "tool": lab.tool.pk, "cases": cases}
    response = api.post("/api/tasks/", body, format="json")
    assert response.status_code == 201, response.content
    return Task.objects.get(pk=response.json()["id"])


def wait_finished(task: Task, *, timeout: float = 90) -> Report:
    wait_for(
        lambda: Task.objects.filter(pk=task.pk, status=Task.Status.FINISHED).exists(),
        timeout=timeout,
        message=f"task {task.pk} finished",
    )
    return Report.objects.get(task=task)


def ready_machines(api, lab, machines) -> list[Node]:
    """Both machines checked, with calc and labtool installed and a deployed worker online."""
    nodes = [
        node_for(machines[0]),
        node_for(machines[1], credentials={"password": "", "private_key": machines[1].private_key}),
    ]
    for node in nodes:
        operate(api, node, "check")
        install(api, lab, node, products=calc_with_labtool(lab))
        operate(api, node, "deploy-worker")
    lab.wait_online(*nodes)
    return nodes


def consumed_queues(node: Node) -> set[str]:
    replies = app.control.inspect(destination=[worker_hostname(node.name)], timeout=2).active_queues() or {}
    return {queue["name"] for queues in replies.values() for queue in queues}


def redis_text() -> str:
    """Every value in this run's Redis db, as text: what Flower and the result backend could show."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    values = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values.append(client.get(key))
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            values.extend(client.hgetall(key).values())
        elif kind == "zset":
            values.extend(client.zrange(key, 0, -1))
        elif kind == "set":
            values.extend(client.smembers(key))
    return "\n".join(value.decode(errors="replace") for value in values)


def test_machines_are_checked_installed_given_a_worker_run_a_task_and_are_uninstalled(
    ssh_lab, api, lab_manager, machines
):
    api.as_user(lab_manager)
    nodes = ready_machines(api, ssh_lab, machines)
    assert {node.worker_version for node in Node.objects.all()} == {release_name()}

    task = submit(api, ssh_lab, [f"sleep_1_{n}" for n in range(6)] + ["fail_x"])
    report = wait_finished(task)
    assert (report.total, report.passed, report.failed) == (7, 6, 1)
    assert set(Case.objects.filter(task=task).values_list("node__name", flat=True)) == {n.name for n in nodes}

    for node in nodes:
        install(api, ssh_lab, node, products=[])
        assert not (machines[0].home / "testhub/products/calc-1.0").exists()
        wait_for(lambda node=node: not any(q.startswith("cap.") for q in consumed_queues(node)), timeout=15)
    assert not NodeProduct.objects.exists()

    leaked = redis_text() + ssh_lab.logs()
    assert machines[0].password not in leaked and machines[1].private_key.splitlines()[1] not in leaked


def test_a_killed_worker_takes_its_node_offline_and_a_redeploy_brings_it_back(ssh_lab, api, lab_manager, machines):
    api.as_user(lab_manager)
    nodes = ready_machines(api, ssh_lab, machines)
    machines[0].kill_user_processes()  # the machine's worker and its supervisor, as a crash would

    wait_for(
        lambda: Node.objects.filter(pk=nodes[0].pk, status=Node.Status.OFFLINE).exists(),
        timeout=25,  # 12 s promised; the margin is for a loaded test machine (bin/bench measures it)
        message="node offline",
    )
    assert Node.objects.get(pk=nodes[1].pk).status == Node.Status.ONLINE
    operate(api, nodes[0], "deploy-worker")
    ssh_lab.wait_online(nodes[0])


@pytest.mark.lab(visibility_timeout=20)
def test_redeploying_a_worker_lets_its_running_case_finish(ssh_lab, api, lab_manager, machines):
    api.as_user(lab_manager)
    nodes = ready_machines(api, ssh_lab, machines)
    api.post(f"/api/nodes/{nodes[1].pk}/maintenance/", {"enabled": True}, format="json")
    task = submit(api, ssh_lab, ["sleep_6_long"])
    wait_for(lambda: Case.objects.filter(task=task, status="running").exists(), timeout=20, message="case running")

    operate(api, nodes[0], "deploy-worker", timeout=120)
    report = wait_finished(task)
    case = Case.objects.get(task=task)
    assert (report.passed, case.attempts, case.node_id) == (1, 1, nodes[0].pk)
    assert "slept 6" in case.log


def test_a_node_in_maintenance_takes_no_new_cases(ssh_lab, api, lab_manager, machines):
    api.as_user(lab_manager)
    nodes = ready_machines(api, ssh_lab, machines)
    api.post(f"/api/nodes/{nodes[0].pk}/maintenance/", {"enabled": True}, format="json")
    wait_for(lambda: not any(q.startswith("cap.") for q in consumed_queues(nodes[0])), timeout=15)

    task = submit(api, ssh_lab, [f"pass_{n}" for n in range(5)])
    wait_finished(task)
    assert set(Case.objects.filter(task=task).values_list("node_id", flat=True)) == {nodes[1].pk}
    assert NodeProduct.objects.get(node=nodes[0]).state == InstallState.INSTALLED


def test_a_worker_that_stops_answering_takes_its_node_offline_until_it_answers_again(
    ssh_lab, api, lab_manager, machines
):
    api.as_user(lab_manager)
    node, _ = ready_machines(api, ssh_lab, machines)
    worker_pid = int((machines[0].home / "testhub/worker/worker.pid").read_text())
    os.kill(worker_pid, signal.SIGSTOP)  # hung, not dead: its supervisor sees nothing wrong
    try:
        wait_for(lambda: Node.objects.filter(pk=node.pk, status=Node.Status.OFFLINE).exists(), timeout=25)
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    ssh_lab.wait_online(node, timeout=15)


def test_removing_a_node_stops_its_worker_for_good_and_deletes_testhubs_files(ssh_lab, api, lab_manager, machines):
    import subprocess

    api.as_user(lab_manager)
    machine = machines[0]
    node = node_for(machine)
    operate(api, node, "check")
    install(api, ssh_lab, node, products=calc_with_labtool(ssh_lab))
    operate(api, node, "deploy-worker")
    ssh_lab.wait_online(node)

    response = api.delete(f"/api/nodes/{node.pk}/")
    assert response.status_code == 202, response.content
    operation = finished(response.json()["id"])
    assert "removed" in operation.message and operation.node_name == node.name
    assert not Node.objects.filter(pk=node.pk).exists()
    workers = subprocess.run(["pgrep", "-u", str(machine.uid), "-f", "python -m worker|supervise"], check=False)
    assert workers.returncode == 1, "a worker or its supervisor still runs"
    assert not (machine.home / "testhub/worker").exists()
    assert not (machine.home / "testhub/products").exists() or not any((machine.home / "testhub/products").iterdir())


def test_seed_demo_makes_ssh_machines_the_demo_lab_which_then_runs_the_demo_suite(
    ssh_lab, api, tester, machines, monkeypatch
):
    import io

    from django.core.management import call_command

    from catalog.models import Product, TestTool
    from devtools.management.commands.demo import _demo_cases

    machine = machines[0]
    monkeypatch.setenv("TESTHUB_DEMO_MACHINE_PASSWORD", machine.password)
    call_command(
        "seed_demo",
        "--machine", f"demo-m={machine.host}:{machine.port}",
        "--ssh-user", machine.username,
        "--install-root", f"{machine.home}/testhub",
        stdout=io.StringIO(),
    )  # fmt: skip
    node = Node.objects.get(name="demo-m")
    ssh_lab.wait_online(node, timeout=120)
    wait_for(lambda: not node.installs.exclude(state=InstallState.INSTALLED).exists(), timeout=60, message="installs")
    product, tool = Product.objects.get(name="demo-calculator"), TestTool.objects.get(name="pytest")
    body = {"name": "demo", "product": product.pk, "tool": tool.pk}
    body["cases"] = [f"tests/test_calc.py::{name}" for name in _demo_cases()]
    response = api.as_user(tester).post("/api/tasks/", body, format="json")
    assert response.status_code == 201, response.content
    report = wait_finished(Task.objects.get(pk=response.json()["id"]), timeout=120)
    assert (report.passed, report.failed) == (7, 1)  # the calculator's one real bug
