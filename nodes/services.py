import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Product, ProductTool, TestTool
from nodes.capabilities import capability_queue
from nodes.models import InstallState, Node, NodeProduct, NodeTool
from nodes.paths import resolve_install_path
from testhub import broker

logger = logging.getLogger(__name__)


@dataclass
class ToolInstall:
    tool: TestTool
    install_path: str = ""


@dataclass
class ProductInstall:
    product: Product
    install_path: str = ""
    tools: list[ToolInstall] = field(default_factory=list)


def node_create(*, password: str = "", **fields) -> Node:
    node = Node(**fields)
    node.set_password(password)
    node.full_clean()
    node.save()
    return node


def node_update(*, node: Node, password: str | None = None, **fields) -> Node:
    """Change the given fields only; a password of None keeps the stored one."""
    for name, value in fields.items():
        setattr(node, name, value)
    changed = list(fields)
    if password is not None:
        node.set_password(password)
        changed.append("password_encrypted")
    node.full_clean()
    node.save(update_fields=[*changed, "updated_at"])
    return node


def default_product_path(product: Product) -> str:
    return f"products/{product.slug}"


def default_tool_path(tool: TestTool) -> str:
    return f"tools/{tool.slug}"


def node_installs_set(*, node: Node, installs: list[ProductInstall]) -> None:
    """Make the node's recorded installs exactly `installs`, all in one transaction.

    Rows that stay keep their ids and states; paths are resolved inside the node's install root.
    """
    problems = []
    seen_products = set()
    linked = set(
        ProductTool.objects.filter(product__in=[i.product for i in installs]).values_list("product_id", "tool_id")
    )
    for index, install in enumerate(installs):
        if install.product.pk in seen_products:
            problems.append(f"products[{index}]: {install.product} is listed twice.")
        seen_products.add(install.product.pk)
        seen_tools = set()
        for tool_install in install.tools:
            if (install.product.pk, tool_install.tool.pk) not in linked:
                problems.append(
                    f"products[{index}]: {tool_install.tool} is not linked to {install.product}; "
                    "link it to the product first."
                )
            if tool_install.tool.pk in seen_tools:
                problems.append(f"products[{index}]: {tool_install.tool} is listed twice.")
            seen_tools.add(tool_install.tool.pk)
        try:
            install.install_path = resolve_install_path(
                root=node.install_root, path=install.install_path, default=default_product_path(install.product)
            )
            for tool_install in install.tools:
                tool_install.install_path = resolve_install_path(
                    root=node.install_root, path=tool_install.install_path, default=default_tool_path(tool_install.tool)
                )
        except ValidationError as error:
            problems.append(f"products[{index}]: {error.messages[0]}")
    if problems:
        raise ValidationError({"products": problems})

    with transaction.atomic():
        Node.objects.select_for_update().filter(pk=node.pk).first()  # one writer per node at a time
        queues_before = node_capability_queues(node=node)
        node.installs.exclude(product__in=[i.product for i in installs]).delete()
        for install in installs:
            node_product, _ = NodeProduct.objects.update_or_create(
                node=node, product=install.product, defaults=_recorded(install.install_path)
            )
            node_product_tools_set(node_product=node_product, tools=install.tools)
        worker_queues_sync(node=node, consumed=queues_before)


def _recorded(install_path: str) -> dict:
    # A lab manager recording an install says it is there: that also clears an earlier failure.
    return {"install_path": install_path, "state": InstallState.INSTALLED, "state_message": ""}


def node_product_tools_set(*, node_product: NodeProduct, tools: list[ToolInstall]) -> None:
    """Make the tools installed for one installed product exactly `tools` (paths already resolved)."""
    node_product.tools.exclude(tool__in=[t.tool for t in tools]).delete()
    for tool_install in tools:
        NodeTool.objects.update_or_create(
            node_product=node_product, tool=tool_install.tool, defaults=_recorded(tool_install.install_path)
        )


def node_capability_queues(*, node: Node) -> set[str]:
    """The capability queues a node's worker should consume: every installed product/tool pair."""
    installed = NodeTool.objects.filter(
        node_product__node=node, node_product__state=InstallState.INSTALLED, state=InstallState.INSTALLED
    ).select_related("node_product__product", "tool")
    return {capability_queue(product=install.node_product.product, tool=install.tool) for install in installed}


def worker_queues_sync(*, node: Node, consumed) -> None:
    """After commit, tell the node's running worker which capability queues to add or cancel.

    Called when installs change, and on every heartbeat with the queues the worker reports, so a
    command lost while the broker or the worker was away is repaired within seconds.
    """
    expected = node_capability_queues(node=node)
    consumed = {queue for queue in consumed if queue.startswith("cap.")}
    to_add, to_cancel = expected - consumed, consumed - expected
    if not (to_add or to_cancel):
        return

    def tell_worker():
        try:
            for queue in sorted(to_add):
                broker.add_consumer(node=node.name, queue=queue)
            for queue in sorted(to_cancel):
                broker.cancel_consumer(node=node.name, queue=queue)
        except Exception:  # the next heartbeat repairs it; an install must not fail for it
            logger.warning("could not reach node %s's worker to change its queues", node.name, exc_info=True)

    transaction.on_commit(tell_worker)
