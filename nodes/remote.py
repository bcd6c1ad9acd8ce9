"""What the control worker does on a test machine over SSH: check it, carry out its installs, deploy its worker.

Each runs as a NodeOperation claimed by the control worker from its id alone; the node's credentials
are read here, from the database, and go nowhere else. The shell scripts run on the machines are in
nodes/scripts/ and need only POSIX sh, tar and (for the worker) Python 3.11+.
"""

import enum
import logging
import shlex
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import LockError

from messaging import broker
from nodes import ssh
from nodes.models import InstallState, Node, NodeOperation, NodeProduct, NodeTool, SSHStatus
from nodes.services import (
    broker_users_enabled,
    node_broker_username,
    node_release_after_check,
    node_worker_settings,
    operation_longest_seconds,
    worker_queues_following,
)
from nodes.worker_release import WorkerReleaseError, release_name, worker_release
from worker import manifest

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CHECK_TIMEOUT = 60
MESSAGE_LIMIT = 4000


class Outcome(enum.Enum):
    DONE = "done"
    MACHINE_BUSY = "machine busy"  # another operation holds the machine: try again shortly
    AWAITING_WORKER = "awaiting worker"  # a deploy started the worker: verify it answers, without blocking


def operation_run(*, operation_id: int) -> Outcome:
    """Carry out one queued operation, one at a time per machine. A redelivered message finds the operation
    claimed and does nothing; one that finds the machine busy leaves it queued for a later try."""
    operation = NodeOperation.objects.filter(pk=operation_id, state=NodeOperation.State.QUEUED).first()
    if operation is None:
        return Outcome.DONE
    lock = broker.machine_lock(node_id=operation.node_id, timeout=operation_longest_seconds())
    if not lock.acquire(blocking=False):
        return Outcome.MACHINE_BUSY
    try:
        claimed = NodeOperation.objects.filter(pk=operation_id, state=NodeOperation.State.QUEUED).update(
            state=NodeOperation.State.RUNNING, started_at=timezone.now()
        )
        if not claimed:
            return Outcome.DONE
        node = Node.objects.filter(pk=operation.node_id).first()  # read under the lock: a key may just be pinned
        if node is None:  # removed meanwhile
            _operation_end(operation_id, state=NodeOperation.State.FAILED, message="The node was removed meanwhile.")
            return Outcome.DONE
        return _carry_out(operation, node)
    finally:
        try:
            lock.release()
        except LockError:  # it outlived the lock's timeout; the next operation simply did not wait for it
            logger.warning("operation %s outlived its machine lock", operation_id)


def _carry_out(operation: NodeOperation, node: Node) -> Outcome:
    carry_out = {
        NodeOperation.Kind.CHECK: node_check,
        NodeOperation.Kind.INSTALL: node_installs_apply,
        NodeOperation.Kind.DEPLOY: node_worker_deploy,
        NodeOperation.Kind.RETIRE: node_retire,
    }[operation.kind]
    try:
        message, state = carry_out(node=node), NodeOperation.State.SUCCEEDED
    except ssh.SSHError as error:
        message, state = error.message, NodeOperation.State.FAILED
    except Exception as error:  # recorded on the operation; the traceback goes to the control worker's log
        logger.exception("operation %s (%s on node %s) failed", operation.pk, operation.kind, node.pk)
        message, state = f"Unexpected error: {type(error).__name__}: {error}", NodeOperation.State.FAILED
    if isinstance(message, WorkerStarted):
        NodeOperation.objects.filter(pk=operation.pk).update(message=message.text[:MESSAGE_LIMIT])
        return Outcome.AWAITING_WORKER
    _operation_end(operation.pk, state=state, message=message)
    return Outcome.DONE


def _operation_end(operation_id: int, *, state: str, message: str) -> None:
    NodeOperation.objects.filter(pk=operation_id, state=NodeOperation.State.RUNNING).update(
        state=state, message=message[:MESSAGE_LIMIT], finished_at=timezone.now()
    )


# --- reaching the machine ---------------------------------------------------------------------------------


def node_target(node: Node) -> ssh.Target:
    return ssh.Target(
        host=node.ip,
        port=node.ssh_port,
        username=node.username,
        password=node.get_password(),
        private_key=node.get_private_key(),
        pinned_host_key=node.host_key,
    )


NOT_MANAGED = (
    "Not managed over SSH: TestHub has no login to this machine, and its worker's heartbeats say how it is. "
    "To check it from here, give the node a password or private key."
)


@contextmanager
def _on_machine(node: Node, *, command_timeout: int | None = None):
    """An SSH session to the node. How the login went is recorded on the node; its first host key is pinned."""
    try:
        with ssh.session(
            node_target(node),
            connect_timeout=settings.TESTHUB_SSH_CONNECT_TIMEOUT,
            command_timeout=command_timeout or settings.TESTHUB_SSH_COMMAND_TIMEOUT,
        ) as session:
            _contact_record(node, host_key=session.host_key)
            yield session
    except ssh.ConnectError as error:
        if not node.managed and not (node.password_encrypted or node.private_key_encrypted):
            # Not a refused login: TestHub was never given one for this machine.
            Node.objects.filter(pk=node.pk).update(ssh_status=SSHStatus.UNCHECKED, ssh_message=NOT_MANAGED)
            raise ssh.ConnectError(SSHStatus.UNCHECKED, NOT_MANAGED) from error
        fields = {"ssh_status": error.status, "ssh_message": error.message[:1000]}
        if error.offered_host_key:
            fields["offered_host_key"] = error.offered_host_key
        Node.objects.filter(pk=node.pk).update(**fields)
        raise


def _contact_record(node: Node, *, host_key: str) -> None:
    fields = {"ssh_status": SSHStatus.OK, "ssh_message": "", "offered_host_key": ""}
    if not node.host_key:
        fields["host_key"] = node.host_key = host_key  # trust on first use
    Node.objects.filter(pk=node.pk).update(**fields)


def _script(session: ssh.Session, name: str, *args: str, timeout: int | None = None, check: bool = True):
    """Run one of nodes/scripts/ on the machine with `args` as its $1, $2, ..."""
    text = (SCRIPTS / name).read_text()
    return session.run(shlex.join(["sh", "-c", text, name, *args]), timeout=timeout, check=check)


# --- check ----------------------------------------------------------------------------------------------


def _installed_paths(node: Node) -> dict[str, list]:
    rows: dict[str, list] = {}
    for install in NodeProduct.objects.filter(node=node, state=InstallState.INSTALLED):
        rows.setdefault(install.install_path, []).append(install)
    for install in NodeTool.objects.filter(node_product__node=node, state=InstallState.INSTALLED):
        rows.setdefault(install.install_path, []).append(install)
    return rows


def node_check(*, node: Node) -> str:
    """Log in, record the machine's facts, and mark installs whose folders are gone as failed.

    Passes when the login works, the install root is writable and Python 3.11+ with venv is there (what
    the worker needs); a passing check ends a quarantine.
    """
    installed = _installed_paths(node)
    with _on_machine(node, command_timeout=CHECK_TIMEOUT) as session:
        output = _script(session, "facts.sh", node.install_root, *installed).stdout
    facts, missing = {}, []
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "missing":
            missing.append(value)
        elif key:
            facts[key] = value.strip()
    for key in ("cpus", "memory_kb", "disk_free_kb"):
        facts[key] = int(facts[key]) if facts.get(key, "").isdigit() else None
    Node.objects.filter(pk=node.pk).update(facts=facts, checked_at=timezone.now())
    if missing:
        with worker_queues_following(node=node):
            for path in missing:
                for install in installed.get(path, []):
                    type(install).objects.filter(pk=install.pk, state=InstallState.INSTALLED).update(
                        state=InstallState.FAILED, state_message=f"{path} is missing on the machine (found by a check)."
                    )

    problems = _check_problems(node, facts)
    if missing:
        problems.append(f"{len(missing)} installed folder(s) missing ({', '.join(missing[:3])}): install them again.")
    if problems:
        raise ssh.SSHError(SSHStatus.FAILED, "Check failed: " + " ".join(problems))
    node_release_after_check(node=node)
    return _facts_summary(facts)


def _check_problems(node: Node, facts: dict) -> list[str]:
    problems = []
    if facts.get("install_root_writable") != "yes":
        problems.append(
            f"{node.username} cannot write to the install root {node.install_root}: create it and give "
            f"{node.username} write access (sudo mkdir -p {node.install_root} && sudo chown {node.username} "
            f"{node.install_root}), or choose another install root."
        )
    version = tuple(int(part) for part in facts.get("python", "").split(".")[:2] if part.isdigit())
    if version < (3, 11):
        found = facts.get("python") or "none"
        problems.append(f"The worker needs Python 3.11 or newer as python3 (found: {found}).")
    elif facts.get("python_venv") != "yes":
        problems.append("Python's venv module is missing: install it (Debian/Ubuntu: apt install python3-venv).")
    return problems


def _facts_summary(facts: dict) -> str:
    def gib(kb):
        return f"{kb / 1024**2:.1f} GiB" if kb else "?"

    return (
        f"{facts.get('os') or '?'} ({facts.get('arch') or '?'}), {facts.get('cpus') or '?'} CPUs, "
        f"{gib(facts.get('memory_kb'))} memory, {gib(facts.get('disk_free_kb'))} free, "
        f"Python {facts.get('python') or 'missing'}."
    )


# --- installs ---------------------------------------------------------------------------------------------


def _inside_root(node: Node, path: str) -> str:
    root = node.install_root.rstrip("/")
    if not path.startswith(root + "/"):  # recorded paths are checked on the way in; this is the last line
        raise ssh.SSHError(SSHStatus.FAILED, f"Refusing to touch {path}: it is outside the install root {root}.")
    return path


def node_installs_apply(*, node: Node) -> str:
    """Make the machine match the node's recorded installs: remove what is removing, copy and unpack what is
    pending, then rewrite the install manifest the worker reads. Each install ends installed, or failed with
    the reason; only then does the worker start or stop consuming the matching queues."""
    products = NodeProduct.objects.filter(node=node)
    tools = NodeTool.objects.filter(node_product__node=node)
    products.filter(state=InstallState.PENDING).update(state=InstallState.INSTALLING)
    tools.filter(state=InstallState.PENDING).update(state=InstallState.INSTALLING)
    outcomes: dict[NodeProduct | NodeTool, str | None] = {}  # install -> None when done, else what went wrong
    try:
        with _on_machine(node) as session:
            removed = _removals_apply(session, node)
            for install in products.filter(state=InstallState.INSTALLING).select_related("product"):
                outcomes[install] = _unpack(session, node, install, install.product.file)
            for install in tools.filter(state=InstallState.INSTALLING).select_related("tool", "node_product"):
                if _shared_folder_in_place(install):
                    outcomes[install] = None  # the same tool for another product: its folder may be in use
                else:
                    outcomes[install] = _unpack(session, node, install, install.tool.file)
            done = {install for install, problem in outcomes.items() if problem is None}
            session.put_text(manifest.document(_manifest_entries(node, also=done)), _manifest_path(node), mode=0o644)
    except ssh.SSHError as error:
        products.filter(state=InstallState.INSTALLING).update(state=InstallState.FAILED, state_message=error.message)
        tools.filter(state=InstallState.INSTALLING).update(state=InstallState.FAILED, state_message=error.message)
        raise
    with worker_queues_following(node=node):
        for install, problem in outcomes.items():
            state = InstallState.INSTALLED if problem is None else InstallState.FAILED
            type(install).objects.filter(pk=install.pk, state=InstallState.INSTALLING).update(
                state=state, state_message=(problem or "")[:1000]
            )
    problems = [f"{install}: {problem}" for install, problem in outcomes.items() if problem]
    summary = f"{len(outcomes) - len(problems)} installed, {len(problems)} failed, {removed} removed."
    if problems:
        raise ssh.SSHError(SSHStatus.FAILED, f"{summary} " + " ".join(problems))
    return summary


def _manifest_path(node: Node) -> str:
    return f"{node.install_root.rstrip('/')}/manifest.json"


def _manifest_entries(node: Node, *, also: set) -> list[dict]:
    """What the worker may use: installed rows, and those installed in this round (`also`)."""

    def usable(install) -> bool:
        return install.state == InstallState.INSTALLED or install in also

    entries = []
    for product_install in NodeProduct.objects.filter(node=node).select_related("product").order_by("pk"):
        if not usable(product_install):
            continue
        tool_installs = product_install.tools.select_related("tool").order_by("pk")
        entries.append(
            manifest.entry(
                product=product_install.product.name,
                version=product_install.product.version,
                path=product_install.install_path,
                tools=[(t.tool.name, t.tool.version, t.install_path) for t in tool_installs if usable(t)],
            )
        )
    return entries


def _shared_folder_in_place(install: NodeTool) -> bool:
    return (
        NodeTool.objects.filter(
            node_product__node_id=install.node_product.node_id,
            tool_id=install.tool_id,
            install_path=install.install_path,
            state=InstallState.INSTALLED,
        )
        .exclude(pk=install.pk)
        .exists()
    )


def _unpack(session: ssh.Session, node: Node, install, file) -> str | None:
    """Copy the uploaded file to the machine and unpack it into the install path; None when it worked."""
    path = _inside_root(node, install.install_path)
    try:
        if not file:
            session.run(shlex.join(["mkdir", "-p", path]))
            return None
        incoming = f"{node.install_root.rstrip('/')}/.incoming"
        name = Path(file.name).name
        remote_file = f"{incoming}/{uuid.uuid4().hex}-{name}"
        session.run(shlex.join(["mkdir", "-p", incoming]))
        with file.open("rb") as local:
            session.put(local, remote_file)
        _script(session, "unpack.sh", remote_file, path, name)
    except ssh.SSHError as error:
        return error.message
    except OSError as error:  # the uploaded file is gone from this control host's storage
        return f"could not read the uploaded file: {error}"
    return None


def _removals_apply(session: ssh.Session, node: Node) -> int:
    """Delete the folders of removing installs (unless an install that stays uses the same folder), then their rows."""
    tools = NodeTool.objects.filter(node_product__node=node)
    products = NodeProduct.objects.filter(node=node)
    # By id: rows dropped while the folders are being deleted wait for the next round, folders and all.
    removing_tools = NodeTool.objects.filter(
        pk__in=list(
            tools.filter(Q(state=InstallState.REMOVING) | Q(node_product__state=InstallState.REMOVING)).values_list(
                "pk", flat=True
            )
        )
    )
    removing_products = NodeProduct.objects.filter(
        pk__in=list(products.filter(state=InstallState.REMOVING).values_list("pk", flat=True))
    )
    kept = set(tools.exclude(pk__in=removing_tools).values_list("install_path", flat=True))
    kept |= set(products.exclude(state=InstallState.REMOVING).values_list("install_path", flat=True))
    doomed = set(removing_tools.values_list("install_path", flat=True))
    doomed |= set(removing_products.values_list("install_path", flat=True))
    folders = sorted(_inside_root(node, path) for path in doomed - kept)
    if folders:
        session.run(shlex.join(["rm", "-rf", "--", *folders]))
    count = removing_tools.count() + removing_products.count()
    removing_tools.delete()
    removing_products.delete()
    return count


# --- removing the node ----------------------------------------------------------------------------------------


def node_retire(*, node: Node) -> str:
    """Stop the node's worker for good, delete what TestHub put on the machine, then delete the node."""
    paths = [
        *NodeProduct.objects.filter(node=node).values_list("install_path", flat=True),
        *NodeTool.objects.filter(node_product__node=node).values_list("install_path", flat=True),
    ]
    folders = sorted({_inside_root(node, path) for path in paths})
    with _on_machine(node) as session:
        said = _script(
            session, "retire.sh", _worker_folder(node), f"testhub-worker-{node.name}", node.install_root, *folders
        ).stdout.strip()
    name, username = node.name, node_broker_username(node)
    node.delete()
    if broker_users_enabled():
        broker.node_user_delete(username=username)
    return f"{said.splitlines()[-1] if said else 'done'}. Node {name} removed."


# --- the worker -------------------------------------------------------------------------------------------


def _worker_folder(node: Node) -> str:
    return f"{node.install_root.rstrip('/')}/worker"


def _worker_env(node: Node) -> str:
    """The worker's configuration on the machine (mode 0600), read by its supervisor script or systemd unit."""
    root = node.install_root.rstrip("/")
    settings_for_worker = {
        **node_worker_settings(node=node),
        "TESTHUB_MANIFEST": f"{root}/manifest.json",
        "TESTHUB_WORKDIR": f"{root}/work",
        "PYTHONUNBUFFERED": "1",
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in settings_for_worker.items())


def _systemd_unit(node: Node) -> str:
    folder = _worker_folder(node)
    return f"""[Unit]
Description=TestHub worker for node {node.name}
After=network-online.target
Wants=network-online.target

[Service]
User={node.username}
WorkingDirectory={folder}/current
EnvironmentFile={folder}/worker.env
ExecStart={folder}/current/venv/bin/python -m worker
Restart=always
RestartSec=2
# TERM to the worker only: it finishes its running cases (warm shutdown) before it exits.
KillMode=mixed
TimeoutStopSec={settings.TESTHUB_VISIBILITY_TIMEOUT}

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class WorkerStarted:
    text: str


def node_worker_deploy(*, node: Node) -> WorkerStarted:
    """Ship the current worker release to the machine and (re)start it there; deploy_verify then waits until
    it answers. A worker already running finishes its running cases before the new one starts (warm shutdown)."""
    try:
        release = worker_release()
    except WorkerReleaseError as error:
        raise ssh.SSHError(SSHStatus.FAILED, str(error)) from None
    folder = _worker_folder(node)
    with _on_machine(node) as session:
        session.run(shlex.join(["mkdir", "-p", f"{folder}/releases", f"{node.install_root.rstrip('/')}/work"]))
        ready = session.run(shlex.join(["test", "-e", f"{folder}/releases/{release.name}/.ready"]), check=False)
        if ready.exit_code != 0:
            session.put(str(release.archive), f"{folder}/releases/{release.name}.tar.gz")
        _script(session, "deploy.sh", folder, release.name)
        session.put_text(_worker_env(node), f"{folder}/worker.env", mode=0o600)
        session.put_text((SCRIPTS / "supervise.sh").read_text(), f"{folder}/supervise", mode=0o755)
        session.put_text(manifest.document(_manifest_entries(node, also=set())), _manifest_path(node), mode=0o644)
        started = _script(session, "start.sh", folder, f"testhub-worker-{node.name}", _systemd_unit(node)).stdout
    how = started.strip().splitlines()[-1] if started.strip() else "started"
    return WorkerStarted(f"Worker {release.name}: {how}.")


def deploy_verify(*, operation_id: int) -> bool:
    """Whether a deploy is settled: its new worker answers (succeeded), or did not in time (failed).

    The new worker must run the new release, answer a ping, and have started after the deploy did: an old
    worker finishing its cases answers too, but its uptime gives it away.
    """
    running = NodeOperation.objects.filter(kind=NodeOperation.Kind.DEPLOY, state=NodeOperation.State.RUNNING)
    operation = running.filter(pk=operation_id).select_related("node").first()
    if operation is None:
        return True
    node, release = operation.node, release_name()
    since_start = (timezone.now() - operation.started_at).total_seconds()
    version = Node.objects.filter(pk=node.pk).values_list("worker_version", flat=True).first()
    if version == release and broker.ping(node=node.name):
        uptime = broker.worker_uptime(node=node.name)
        if uptime is not None and uptime <= since_start + 1:
            _operation_end(
                operation.pk, state=NodeOperation.State.SUCCEEDED, message=f"{operation.message} It answers."
            )
            return True
    if since_start < settings.TESTHUB_DEPLOY_VERIFY_SECONDS:
        return False
    log = f"{_worker_folder(node)}/worker.log"
    _operation_end(
        operation.pk,
        state=NodeOperation.State.FAILED,
        message=f"{operation.message} It did not answer within {settings.TESTHUB_DEPLOY_VERIFY_SECONDS} s. "
        f"Last lines of {log}:\n{_worker_log_tail(node, log)}",
    )
    return True


def _worker_log_tail(node: Node, log: str) -> str:
    try:
        with _on_machine(node, command_timeout=CHECK_TIMEOUT) as session:
            return session.run(shlex.join(["tail", "-n", "30", log]), check=False).stdout[-2000:]
    except ssh.SSHError as error:
        return f"(could not read it: {error.message})"
