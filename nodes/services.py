import hashlib
import logging
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from celery import Task
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from api.errors import Conflict, DomainError
from catalog.models import Product, TestTool
from catalog.services import product_tools_require
from messaging import broker
from nodes import crypto
from nodes.capabilities import capability_queue
from nodes.models import InstallState, Node, NodeOperation, NodeProduct, NodeTool
from nodes.paths import resolve_install_path
from nodes.signals import node_removal_checks, nodes_went_silent
from nodes.tasks import run_operation
from worker.protocol import PROTOCOL_VERSION

logger = logging.getLogger(__name__)

_Install = TypeVar("_Install", NodeProduct, NodeTool)


@dataclass
class ToolInstall:
    tool: TestTool
    install_path: str = ""


@dataclass
class ProductInstall:
    product: Product
    install_path: str = ""
    tools: list[ToolInstall] = field(default_factory=list)


def product_tool_installs_refusal(*, product: Product, tool: TestTool, **signal: object) -> str | None:
    """Why a tool cannot be unlinked from a product: the nodes where it is installed for it."""
    installs = NodeTool.objects.filter(tool=tool, node_product__product=product).count()
    if installs:
        return f"{tool} is installed for {product} on {installs} node(s); uninstall it there first."
    return None


def node_create(*, password: str = "", private_key: str = "", **fields: Any) -> Node:
    return node_add(node=Node(**fields), password=password, private_key=private_key)


def node_add(*, node: Node, password: str = "", private_key: str = "") -> Node:
    """Save a new node (built by the caller, as admin's form does) with its credentials encrypted."""
    node.set_password(password)
    node.set_private_key(private_key)
    node.full_clean()
    node.save()
    return node


def node_update(*, node: Node, password: str | None = None, private_key: str | None = None, **fields: Any) -> Node:
    """Change the given fields only; a password or key of None keeps the stored one."""
    for name, value in fields.items():
        setattr(node, name, value)
    changed = list(fields)
    if password is not None:
        node.set_password(password)
        changed.append("password_encrypted")
    if private_key is not None:
        node.set_private_key(private_key)
        changed.append("private_key_encrypted")
    node.full_clean()
    node.save(update_fields=[*changed, "updated_at"])
    return node


def node_host_key_accept(*, node: Node, fingerprint: str) -> Node:
    """Pin the key the machine offered, if it is the one the lab manager looked at."""
    from nodes.ssh import fingerprint as fingerprint_of

    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        if not node.offered_host_key:
            raise Conflict(f"{node} has not offered a different host key: there is nothing to accept.")
        offered = fingerprint_of(node.offered_host_key)
        if fingerprint.strip() != offered:
            raise Conflict(f"{node} offered {offered}, not {fingerprint.strip()}: check the machine's key again.")
        node.host_key, node.offered_host_key = node.offered_host_key, ""
        node.ssh_message = "New host key accepted; run a check."
        node.save(update_fields=["host_key", "offered_host_key", "ssh_message", "updated_at"])
    return node


def installs_apply_request(*, node: Node, user: User | None = None, reinstall: bool = False) -> NodeOperation:
    """Carry the node's installs out on its machine again (pending, failed, removals; with `reinstall` every one).
    Only a managed node's machine is TestHub's to change."""
    if not node.managed:
        raise DomainError(f"{node} is not managed over SSH: its installs are only recorded here.")
    installs_retry(node=node, reinstall=reinstall)
    return operation_request(node=node, kind=NodeOperation.Kind.INSTALL, user=user)


def installs_retry(*, node: Node, reinstall: bool = False) -> None:
    """Failed installs of a managed node become pending, for the next install operation; with `reinstall`,
    installed ones too (to ship a product or tool file uploaded again). The worker stops taking their cases
    until they are back."""
    states = [InstallState.FAILED, InstallState.INSTALLED] if reinstall else [InstallState.FAILED]
    with worker_queues_following(node=node):
        NodeProduct.objects.filter(node=node, state__in=states).update(state=InstallState.PENDING, state_message="")
        NodeTool.objects.filter(node_product__node=node, state__in=states).update(
            state=InstallState.PENDING, state_message=""
        )


def default_product_path(product: Product) -> str:
    return f"products/{product.slug}"


def default_tool_path(tool: TestTool) -> str:
    return f"tools/{tool.slug}"


def node_installs_set(*, node: Node, installs: list[ProductInstall]) -> None:
    """Make the node's installs exactly `installs`, all in one transaction.

    On a node TestHub manages over SSH, new, moved and failed installs become pending and dropped ones
    removing; the control worker then carries the change out on the machine. On an unmanaged node the
    change is only recorded (someone else puts the files there). Paths resolve inside the install root.
    """
    problems = _installs_problems(node=node, installs=installs)
    if problems:
        raise ValidationError({"products": problems})
    with worker_queues_following(node=node):
        _installs_drop(node=node, keeping=[install.product for install in installs])
        for install in installs:
            node_product = _install_record(
                NodeProduct, managed=node.managed, path=install.install_path, node=node, product=install.product
            )
            node_product_tools_set(node_product=node_product, tools=install.tools)
        _machine_follow(node=node)


def _installs_problems(*, node: Node, installs: list[ProductInstall]) -> list[str]:
    """What is wrong with the installs, each prefixed with where it is; resolves their paths on the way."""
    problems = []
    seen_products = set()
    for index, install in enumerate(installs):
        if install.product.pk in seen_products:
            problems.append(f"products[{index}]: {install.product} is listed twice.")
        seen_products.add(install.product.pk)
        problems += [f"products[{index}]: {problem}" for problem in _install_problems(node=node, install=install)]
    return problems


def _install_problems(*, node: Node, install: ProductInstall) -> list[str]:
    problems = []
    tools = [tool_install.tool for tool_install in install.tools]
    try:
        product_tools_require(product=install.product, tools=tools)
    except DomainError as error:
        problems.append(error.message)
    problems += [f"{tool} is listed twice." for tool in dict.fromkeys(tool for tool in tools if tools.count(tool) > 1)]
    try:
        install.install_path = resolve_install_path(
            root=node.install_root, path=install.install_path, default=default_product_path(install.product)
        )
        for tool_install in install.tools:
            tool_install.install_path = resolve_install_path(
                root=node.install_root, path=tool_install.install_path, default=default_tool_path(tool_install.tool)
            )
    except ValidationError as error:
        problems.append(error.messages[0])
    return problems


def _installs_drop(*, node: Node, keeping: list[Product]) -> None:
    """Installs of products not kept: removed from the machine first on a managed node, forgotten otherwise."""
    dropped = node.installs.exclude(product__in=keeping)
    if node.managed:
        NodeTool.objects.filter(node_product__in=dropped).update(state=InstallState.REMOVING, state_message="")
        dropped.update(state=InstallState.REMOVING, state_message="")
    else:
        dropped.delete()


def node_tools_set(*, node_product: NodeProduct, tools: list[ToolInstall]) -> None:
    """Make the tools installed for one of a node's products exactly `tools` (paths already resolved)."""
    with worker_queues_following(node=node_product.node):
        node_product_tools_set(node_product=node_product, tools=tools)
        _machine_follow(node=node_product.node)


def _machine_follow(*, node: Node) -> None:
    """A managed machine's files follow its recorded installs (after commit, on the control worker)."""
    if node.managed:
        operation_request(node=node, kind=NodeOperation.Kind.INSTALL)


def _install_record(model: type[_Install], *, managed: bool, path: str, **identity: object) -> _Install:
    """Create or update one install row. A lab manager recording an install on an unmanaged node says it is
    there (which also clears an earlier failure); on a managed node anything new, moved or failed is pending."""
    row = model.objects.filter(**identity).first()
    fields: dict[str, str]
    if not managed:
        fields = {"install_path": path, "state": InstallState.INSTALLED, "state_message": ""}
    elif row is None or row.install_path != path or row.state != InstallState.INSTALLED:
        fields = {"install_path": path, "state": InstallState.PENDING, "state_message": ""}
    else:
        return row
    if row is None:
        return model.objects.create(**identity, **fields)
    for name, value in fields.items():
        setattr(row, name, value)
    row.save(update_fields=[*fields, "updated_at"])
    return row


def node_product_tools_set(*, node_product: NodeProduct, tools: list[ToolInstall]) -> None:
    """Make the tools installed for one installed product exactly `tools` (paths already resolved)."""
    managed = node_product.node.managed
    dropped = node_product.tools.exclude(tool__in=[t.tool for t in tools])
    if managed:
        dropped.update(state=InstallState.REMOVING, state_message="")
    else:
        dropped.delete()
    for tool_install in tools:
        _install_record(
            NodeTool, managed=managed, path=tool_install.install_path, node_product=node_product, tool=tool_install.tool
        )


def node_capability_queues(*, node: Node) -> set[str]:
    """The capability queues a node's worker should consume: every installed product/tool pair, none while
    the node is in maintenance, quarantined or runs a worker too old for the message format."""
    if not node.takes_work:
        return set()
    installed = NodeTool.objects.filter(
        node_product__node=node, node_product__state=InstallState.INSTALLED, state=InstallState.INSTALLED
    ).select_related("node_product__product", "tool")
    return {capability_queue(product=install.node_product.product, tool=install.tool) for install in installed}


@contextmanager
def worker_queues_following(*, node: Node) -> Iterator[None]:
    """A transaction, holding the node's row, after which its worker's queues follow what the block changed
    about its installs or its status (with `node`'s fields as the block leaves them)."""
    with transaction.atomic():
        Node.objects.select_for_update().filter(pk=node.pk).first()  # one writer per node at a time
        queues_before = node_capability_queues(node=node)
        yield
        worker_queues_sync(node=node, consumed=queues_before)


def _status_set(*, node: Node, status: str, reason: str) -> None:
    with worker_queues_following(node=node):
        node.status, node.status_reason = status, reason[:500]
        node.save(update_fields=["status", "status_reason", "updated_at"])


def worker_queues_sync(*, node: Node, consumed: Iterable[str]) -> None:
    """After commit, tell the node's running worker which capability queues to add or cancel.

    Called when installs change, and on every heartbeat with the queues the worker reports, so a
    command lost while the broker or the worker was away is repaired within seconds.
    """
    expected = node_capability_queues(node=node)
    consumed = {queue for queue in consumed if queue.startswith("cap.")}
    to_add, to_cancel = expected - consumed, consumed - expected

    def tell_worker() -> None:
        try:
            # First the broker user: it may read a queue once allowed, and keeps what it still reads until
            # it has let go (the next heartbeat narrows it).
            node_broker_user_sync(node=node, queues=expected | consumed)
            for queue in sorted(to_add):
                broker.add_consumer(node=node.name, queue=queue)
            for queue in sorted(to_cancel):
                broker.cancel_consumer(node=node.name, queue=queue)
        except Exception:  # the next heartbeat repairs it; an install must not fail for it
            logger.warning("could not reach node %s's worker to change its queues", node.name, exc_info=True)

    transaction.on_commit(tell_worker)


# --- what a node's worker needs to join the lab ----------------------------------------------------------------


def _secret(node: Node, field: str) -> str:
    """The node's secret kept in `field`, made on first use (once, even when asked for twice at once)."""
    stored = Node.objects.values_list(field, flat=True).get(pk=node.pk)
    if not stored:
        made = crypto.encrypt(secrets.token_urlsafe(32))
        Node.objects.filter(pk=node.pk, **{field: ""}).update(**{field: made})
        stored = Node.objects.values_list(field, flat=True).get(pk=node.pk)
    return crypto.decrypt(stored)


def node_event_key(*, node: Node) -> str:
    """The key the node's worker signs its events with (TESTHUB_NODE_KEY on the machine)."""
    return _secret(node, "event_key_encrypted")


def node_broker_url(*, node: Node, base_url: str | None = None) -> str:
    """The broker URL the node's worker connects with (`base_url`: how the machine reaches Redis, by default
    TESTHUB_WORKER_BROKER_URL): as the node's own broker user, which this makes or brings up to date."""
    base_url = base_url or settings.TESTHUB_WORKER_BROKER_URL
    if not broker_users_enabled():
        return base_url
    password = _secret(node, "broker_password_encrypted")
    node_broker_user_sync(node=node, force=True)
    return broker.url_with_user(base_url, username=node_broker_username(node), password=password)


def broker_users_enabled() -> bool:
    """TESTHUB_NODE_BROKER_USERS, where the broker can enforce them (Redis 7: read- and write-only keys)."""
    return settings.TESTHUB_NODE_BROKER_USERS and broker.broker_users_supported()


def node_broker_username(node: Node) -> str:
    return f"{settings.TESTHUB_BROKER_USER_PREFIX}{node.name}"


def node_broker_user_sync(*, node: Node, queues: set[str] | None = None, force: bool = False) -> None:
    """The node's broker user may reach `queues` (by default the capability queues it should consume). Applied
    only when its rules change, or when the broker lost them (a Redis restart: users live in memory)."""
    if not broker_users_enabled():
        return
    stored = Node.objects.values_list("broker_password_encrypted", flat=True).get(pk=node.pk)
    if not (stored or force):
        return  # its worker never got a broker user of its own
    queues = node_capability_queues(node=node) if queues is None else queues
    rules = broker.node_user_rules(node=node.name, queues=queues)
    password = _secret(node, "broker_password_encrypted")
    digest = hashlib.sha256("\n".join([password, *rules]).encode()).hexdigest()
    if broker.node_user_current(username=node_broker_username(node), digest=digest):
        return
    broker.node_user_set(username=node_broker_username(node), password=password, rules=rules, digest=digest)


def node_broker_users_sync() -> int:
    """Every node's broker user, again where the broker lost it (the reconciler calls this: a Redis restart
    forgets users, and a worker that cannot sign in cannot send the heartbeat that would bring it back)."""
    synced = 0
    for node in Node.objects.exclude(broker_password_encrypted=""):
        node_broker_user_sync(node=node)
        synced += 1
    return synced


def node_worker_settings(*, node: Node, broker_url: str | None = None) -> dict[str, str]:
    """The environment a node's worker runs with: who it is, how it reaches the broker, the key it signs with.

    Secrets go to the worker through its environment (or a 0600 file on a managed machine), never its command
    line, where `ps` would show them; the worker passes none of them on to the cases it runs.
    """
    return {
        "TESTHUB_NODE": node.name,
        "TESTHUB_BROKER_URL": node_broker_url(node=node, base_url=broker_url),
        "TESTHUB_NODE_KEY": node_event_key(node=node),
        "TESTHUB_SLOTS": str(node.slots),
        "TESTHUB_VISIBILITY_TIMEOUT": str(settings.TESTHUB_VISIBILITY_TIMEOUT),
    }


def node_event_keys(*, names: set[str]) -> dict[str, str]:
    """The event keys of the named nodes that exist and have one."""
    rows = (
        Node.objects.filter(name__in=names).exclude(event_key_encrypted="").values_list("name", "event_key_encrypted")
    )
    return {name: crypto.decrypt(token) for name, token in rows}


# --- removing a node -----------------------------------------------------------------------------------------


def node_delete(*, node: Node, user: User | None = None, force: bool = False) -> NodeOperation | None:
    """Remove a node, refused (Conflict) while it is running cases.

    A managed node whose machine holds TestHub's files or worker is retired over SSH first: the node takes no
    more work, the control worker stops its worker for good and deletes what TestHub put there, then deletes
    the node; that operation is returned. Otherwise, or with `force` (the machine is gone), the node is
    deleted now, and its worker, if one still runs, is told to take nothing more.
    """
    refusals = [answer for _, answer in node_removal_checks.send(sender=Node, node=node) if answer]
    if refusals:
        raise Conflict(f"{node} cannot be removed yet: {' '.join(refusals)}")
    if node.managed and not force and _has_footprint(node):
        reason = "Being removed: stopping its worker and deleting its files."
        _status_set(node=node, status=Node.Status.RETIRING, reason=reason)
        return operation_request(node=node, kind=NodeOperation.Kind.RETIRE, user=user)
    with transaction.atomic():
        consumed = node_capability_queues(node=node)
        name, username = node.name, node_broker_username(node)
        node.delete()
        transaction.on_commit(lambda: _worker_idle(node_name=name, queues=consumed, broker_user=username))
    return None


def _has_footprint(node: Node) -> bool:
    return bool(node.worker_version or node.facts.get("worker_release") or node.installs.exists())


def _worker_idle(*, node_name: str, queues: set[str], broker_user: str = "") -> None:
    """A removed node's worker takes no more work: its queues are cancelled and its broker user deleted."""
    try:
        for queue in sorted(queues):
            broker.cancel_consumer(node=node_name, queue=queue)
        if broker_user and broker_users_enabled():
            broker.node_user_delete(username=broker_user)
    except Exception:  # its heartbeats repair it: a worker of an unknown node is told to consume nothing
        logger.warning("could not reach the worker of removed node %s", node_name, exc_info=True)


# --- taking a node out of service and back -------------------------------------------------------------


def node_maintenance_set(*, node: Node, enabled: bool, reason: str = "") -> Node:
    """In maintenance a node takes no new cases; the cases it is running finish. Ending it waits for a heartbeat."""
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        if enabled and node.status == Node.Status.QUARANTINED:
            raise Conflict(f"{node} is quarantined: it takes no new cases already, and a passing check ends that.")
        if enabled:
            _status_set(
                node=node, status=Node.Status.MAINTENANCE, reason=reason or "Put in maintenance by a lab manager."
            )
        elif node.status == Node.Status.MAINTENANCE:
            _status_set(node=node, status=Node.Status.OFFLINE, reason="Back from maintenance; waiting for its worker.")
        else:
            raise Conflict(f"{node} is {node.get_status_display().lower()}, not in maintenance.")
    return node


@dataclass
class InfraErrorStreak:
    """What one batch of case events says of a node: cases that ran normally restart the count, and
    `errors` infrastructure errors came after the last of them (or after the batch began)."""

    restarted: bool = False
    errors: int = 0


def node_infra_errors_count(*, streaks: dict[int, InfraErrorStreak]) -> None:
    """Keep each node's count of infrastructure errors in a row; quarantine a node when it reaches the threshold."""
    restarted = {node_id: streak.errors for node_id, streak in streaks.items() if streak.restarted}
    for errors in set(restarted.values()):
        node_ids = [node_id for node_id, count in restarted.items() if count == errors]
        Node.objects.filter(pk__in=node_ids).exclude(infra_error_streak=errors).update(infra_error_streak=errors)
    threshold = settings.TESTHUB_QUARANTINE_AFTER
    for node_id, streak in streaks.items():
        if not streak.errors:
            continue
        if not streak.restarted:
            Node.objects.filter(pk=node_id).update(infra_error_streak=F("infra_error_streak") + streak.errors)
        node = Node.objects.get(pk=node_id)
        if node.infra_error_streak < threshold or node.status in Node.HELD_STATUSES:
            continue
        _status_set(
            node=node,
            status=Node.Status.QUARANTINED,
            reason=f"Quarantined: {node.infra_error_streak} cases in a row could not run here (infrastructure "
            "errors). Fix the machine, then run a check: a passing check brings it back.",
        )
        logger.warning("node %s quarantined after %s infrastructure errors", node.name, node.infra_error_streak)


def node_release_after_check(*, node: Node) -> None:
    """A passing check ends a quarantine: the node takes work again once its worker's next heartbeat arrives."""
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        Node.objects.filter(pk=node.pk).update(infra_error_streak=0)
        if node.status == Node.Status.QUARANTINED:
            _status_set(node=node, status=Node.Status.OFFLINE, reason="Check passed; waiting for its worker.")


# --- operations over SSH, carried out by the control worker ---------------------------------------------


def operation_request(*, node: Node, kind: str, user: User | None = None) -> NodeOperation:
    """Queue an operation on the node; one already waiting of the same kind is reused (it will see this change)."""
    if node.status == Node.Status.RETIRING and kind != NodeOperation.Kind.RETIRE:
        raise Conflict(f"{node} is being removed: nothing more is done on its machine.")
    with transaction.atomic():
        # Locked, so the control worker cannot claim it while this transaction still changes what it will read.
        waiting = (
            NodeOperation.objects.select_for_update()
            .filter(node=node, kind=kind, state=NodeOperation.State.QUEUED)
            .first()
        )
        if waiting:
            return waiting
        operation = NodeOperation.objects.create(node=node, node_name=node.name, kind=kind, requested_by=user)
        transaction.on_commit(lambda: _enqueue(run_operation, operation.pk))
    return operation


def _enqueue(celery_task: "Task[[int], None]", operation_id: int) -> None:
    try:
        celery_task.apply_async((operation_id,), retry=False)
    except Exception:  # the reconciler re-sends queued operations
        logger.warning("operation %s: broker unreachable; the reconciler will send it", operation_id, exc_info=True)


def operation_longest_seconds() -> int:
    """An operation runs a few commands, each bounded, and a deploy then waits for the new worker."""
    return settings.TESTHUB_SSH_COMMAND_TIMEOUT * 4 + settings.TESTHUB_DEPLOY_VERIFY_SECONDS


def operations_reconcile(*, now: datetime) -> None:
    """Operations whose message was lost are sent again; ones whose control worker died are failed."""
    stale = now - timedelta(seconds=60)
    for operation_id in NodeOperation.objects.filter(
        state=NodeOperation.State.QUEUED, created_at__lt=stale
    ).values_list("pk", flat=True):
        _enqueue(run_operation, operation_id)
    abandoned = now - timedelta(
        seconds=settings.TESTHUB_SSH_COMMAND_TIMEOUT * 2 + settings.TESTHUB_DEPLOY_VERIFY_SECONDS
    )
    lost = NodeOperation.objects.filter(state=NodeOperation.State.RUNNING, started_at__lt=abandoned)
    lost_message = "The control worker stopped while carrying this out: run it again."
    for operation in lost.filter(kind=NodeOperation.Kind.INSTALL):
        if operation.node_id is None:
            continue  # its node is gone, and the node's installs with it
        NodeProduct.objects.filter(node_id=operation.node_id, state=InstallState.INSTALLING).update(
            state=InstallState.FAILED, state_message=lost_message
        )
        NodeTool.objects.filter(node_product__node_id=operation.node_id, state=InstallState.INSTALLING).update(
            state=InstallState.FAILED, state_message=lost_message
        )
    lost.update(state=NodeOperation.State.FAILED, finished_at=now, message=lost_message)


def nodes_reconcile(*, now: datetime | None = None) -> None:
    """What the nodes' own records can drift from: lost or abandoned operations, and the machines' broker users
    (a Redis restart forgets them)."""
    operations_reconcile(now=now or timezone.now())
    node_broker_users_sync()


# --- liveness ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatSeen:
    """What a node's worker said in its latest heartbeat."""

    node: str
    version: str
    protocol: int
    queues: list[str]


def node_heartbeats_record(*, heartbeats: list[HeartbeatSeen]) -> None:
    """A heartbeat brings a silent node back online, unless its worker is too old for the message format:
    then the node is marked so, and its worker is told to stop consuming (cases would be misread). Each
    worker's queues are brought in line with what its node should consume."""
    latest = {beat.node: beat for beat in heartbeats}
    for node in Node.objects.filter(name__in=latest):
        beat = latest[node.name]
        nodes = Node.objects.filter(pk=node.pk)
        nodes.update(
            # The control plane's clock, not the machine's: a machine whose clock is off must not flap offline.
            last_heartbeat=timezone.now(),
            worker_version=beat.version[:40],
            worker_protocol=beat.protocol,
        )
        if beat.protocol < PROTOCOL_VERSION:
            nodes.exclude(status__in=Node.HELD_STATUSES).update(
                status=Node.Status.OUTDATED,
                status_reason=(
                    f"Its worker {beat.version} speaks message format {beat.protocol}; this control plane needs "
                    f"{PROTOCOL_VERSION}. Deploy the worker again to update it."
                )[:500],
            )
        else:
            nodes.filter(status__in=[Node.Status.UNKNOWN, Node.Status.OFFLINE, Node.Status.OUTDATED]).update(
                status=Node.Status.ONLINE, status_reason=""
            )
        node.refresh_from_db(fields=["status"])
        worker_queues_sync(node=node, consumed=beat.queues)


def node_unverified_heartbeats_record(*, heartbeats: list[HeartbeatSeen]) -> None:
    """Heartbeats whose signature failed. From a node TestHub does not know (it was removed), or from a worker too
    old to sign (as the node's last word also said): that worker is told to consume nothing, since what it ran
    could not be recorded; a current worker's next signed heartbeat gives its queues back."""
    nodes = {node.name: node for node in Node.objects.filter(name__in={beat.node for beat in heartbeats})}
    too_old = f"Its worker is too old to sign its events (format {PROTOCOL_VERSION} needed): deploy it again."
    for beat in heartbeats:
        node = nodes.get(beat.node)
        if node is not None:
            if beat.protocol >= PROTOCOL_VERSION or (node.worker_protocol or 0) >= PROTOCOL_VERSION:
                continue  # a current worker: the unsigned word is not its own
            Node.objects.filter(pk=node.pk).exclude(status__in=Node.HELD_STATUSES).update(
                status=Node.Status.OUTDATED, status_reason=too_old
            )
        consumed = {queue for queue in beat.queues if queue.startswith("cap.")}
        if consumed:
            transaction.on_commit(partial(_worker_idle, node_name=beat.node, queues=consumed))


def node_install_mark_failed(*, node_id: int, product_id: int, tool_id: int, reason: str) -> None:
    """The node could not run what it claims to have: take it out of the capability until it is fixed."""
    marked = NodeTool.objects.filter(
        node_product__node_id=node_id, node_product__product_id=product_id, tool_id=tool_id
    ).update(state=InstallState.FAILED, state_message=reason[:1000])
    if marked:
        node_name = Node.objects.values_list("name", flat=True).get(pk=node_id)
        # The queue from the catalog, never from the event: a worker's word does not name queues.
        queue = capability_queue(product=Product.objects.get(pk=product_id), tool=TestTool.objects.get(pk=tool_id))
        transaction.on_commit(lambda: broker.cancel_consumer(node=node_name, queue=queue))


def nodes_silent_since(*, now: datetime | None = None) -> datetime | None:
    """Nodes whose last heartbeat is older than this are silent: None while the control plane itself has not
    been able to hear them long enough to tell (it just started, or Redis or PostgreSQL was away)."""
    offline_after = settings.TESTHUB_NODE_OFFLINE_AFTER_SECONDS
    if not broker.heard_for_at_least(offline_after):
        return None
    return (now or timezone.now()) - timedelta(seconds=offline_after)


def nodes_mark_offline(*, now: datetime | None = None) -> list[str]:
    """Online nodes whose worker has been silent longer than TESTHUB_NODE_OFFLINE_AFTER_SECONDS go offline."""
    silent_since = nodes_silent_since(now=now)
    if silent_since is None:
        return []
    stale = Node.objects.filter(status=Node.Status.ONLINE, last_heartbeat__lt=silent_since)
    names = list(stale.values_list("name", flat=True))
    if names:
        stale.filter(name__in=names).update(status=Node.Status.OFFLINE, status_reason="Its worker stopped answering.")
        logger.warning("nodes offline (no heartbeat): %s", ", ".join(names))
    return names


_UNREAD_EVENTS_TOO_MANY = 500  # a recorder's batch


def liveness_sweep(*, now: datetime | None = None) -> list[str]:
    """Silent nodes go offline, then the apps built on nodes take back what silent nodes held (the cases they
    were running). Returns the nodes that went offline."""
    if broker.events_unread() >= _UNREAD_EVENTS_TOO_MANY:
        # The recorders are behind: a node's latest heartbeat may be among the unread events.
        logger.warning("liveness sweep skipped: %s worker events not yet recorded", broker.events_unread())
        return []
    offline = nodes_mark_offline(now=now)
    silent_since = nodes_silent_since(now=now)
    if silent_since is not None:
        nodes_went_silent.send(sender=Node, silent_since=silent_since)
    return offline
