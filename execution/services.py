from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from catalog.models import Product, ProductTool, TestTool
from execution.models import Case, Task
from nodes.capabilities import capability_queue
from nodes.models import Node
from testhub.errors import DomainError, NoCapableNode


def capability_require_online(*, product: Product, tool: TestTool) -> None:
    """Raise NoCapableNode unless an online node has `product` with `tool` installed."""
    capable = Node.objects.capable_of(product=product, tool=tool)
    if capable.online().exists():
        return
    queue = capability_queue(product=product, tool=tool)
    others = list(capable.values_list("name", "status")[:10])
    if others:
        listed = ", ".join(f"{name} ({status})" for name, status in others)
        hint = f"Nodes that have it installed but are not online: {listed}."
    else:
        hint = "No node has it installed: install the tool for this product on a node first."
    raise NoCapableNode(f"No online node can run {product} with {tool} (capability {queue}). {hint}")


def task_submit(
    *, user: AbstractBaseUser, name: str, product: Product, tool: TestTool, case_names: list[str], priority: int
) -> Task:
    """Write a task and its cases in one transaction. Case names must already be unique and non-empty."""
    if not ProductTool.objects.filter(product=product, tool=tool).exists():
        raise DomainError(f"{tool} is not linked to {product}; pick one of the product's tools.")
    if len(case_names) > settings.TESTHUB_MAX_CASES_PER_TASK:
        raise DomainError(f"A task holds at most {settings.TESTHUB_MAX_CASES_PER_TASK} cases; split the list.")
    capability_require_online(product=product, tool=tool)
    with transaction.atomic():
        task = Task.objects.create(name=name, created_by=user, product=product, tool=tool, priority=priority)
        Case.objects.bulk_create([Case(task=task, name=case_name) for case_name in case_names], batch_size=5000)
    return task
