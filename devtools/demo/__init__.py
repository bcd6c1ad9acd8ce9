"""The demo lab: a small product with its own test suite (calculator/), pytest as the tool, two nodes.

Local (bin/run): the nodes are worker processes on this machine, their installs only recorded. On real
machines (seed_demo --machine name=address): the nodes are managed over SSH, and the control worker installs
the product's package and pytest's launcher there and deploys their workers.
"""

import io
import secrets
import tarfile
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.db import transaction

from accounts.roles import LAB_MANAGERS, TESTERS
from catalog import services as catalog_services
from catalog.models import Product, ProductTool, TestTool
from nodes import services as node_services
from nodes.models import Node, NodeOperation

NODES = ("demo-node-1", "demo-node-2")
CALCULATOR = Path(__file__).resolve().parent / "calculator"
# The demo tool on a machine: the pytest its Python has (the demo machines' image installs it).
PYTEST_LAUNCHER = '#!/bin/sh\nexec python3 -m pytest "$@"\n'


@transaction.atomic
def demo_lab_seed(*, install_root: str) -> dict[str, str]:
    """Create or refresh the local demo lab; returns the logins, with passwords made afresh each time."""
    product, tool = _demo_product_and_tool()
    for name in NODES:
        root = f"{install_root}/{name}"
        node = Node.objects.filter(name=name).first() or node_services.node_create(
            name=name, ip="127.0.0.1", username="testhub", install_root=root, managed=False
        )
        node_services.node_installs_set(
            node=node,
            installs=[node_services.ProductInstall(product=product, tools=[node_services.ToolInstall(tool=tool)])],
        )
    return _logins()


def _demo_product_and_tool() -> tuple[Product, TestTool]:
    product, _ = Product.objects.get_or_create(name="demo-calculator", version="1.0")
    tool, _ = TestTool.objects.get_or_create(
        name="pytest",
        version="8",
        defaults={"command_template": "{tool_path}/pytest -q -p no:cacheprovider --rootdir {product_path} "
                                      "{product_path}/{case}"},
    )  # fmt: skip
    ProductTool.objects.get_or_create(product=product, tool=tool)
    return product, tool


def _logins() -> dict[str, str]:
    return {
        "admin": _login("admin", group=LAB_MANAGERS, superuser=True),
        "tester": _login("tester", group=TESTERS),
    }


@transaction.atomic
def demo_machines_seed(
    *, machines: dict[str, tuple[str, int]], username: str, password: str, install_root: str
) -> dict[str, str]:
    """The demo lab on real machines reached over SSH ({name: (address, port)}): the product's package and
    pytest's launcher as files TestHub installs there, and a check, the installs and a worker deploy queued on
    each. The machines' Python must have pytest (the demo machines' image does)."""
    product, tool = _demo_product_and_tool()
    if not product.file:
        catalog_services.product_upload(name=product.name, version=product.version, file=_calculator_package())
    if not tool.file:
        catalog_services.tool_file_set(tool=tool, file=ContentFile(PYTEST_LAUNCHER.encode(), name="pytest"))
    for name, (address, port) in machines.items():
        node = Node.objects.filter(name=name).first() or node_services.node_create(
            name=name,
            ip=address,
            ssh_port=port,
            username=username,
            password=password,
            install_root=install_root,
            managed=True,
        )
        node_services.node_installs_set(
            node=node,
            installs=[node_services.ProductInstall(product=product, tools=[node_services.ToolInstall(tool=tool)])],
        )
        for kind in (NodeOperation.Kind.CHECK, NodeOperation.Kind.DEPLOY):
            node_services.operation_request(node=node, kind=kind)
    return _logins()


def _calculator_package() -> ContentFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as package:
        package.add(CALCULATOR, arcname=".", filter=lambda info: None if "__pycache__" in info.name else info)
    return ContentFile(buffer.getvalue(), name="demo-calculator-1.0.tar.gz")


def _login(username: str, *, group: str, superuser: bool = False) -> str:
    """A fresh random password each run: the demo never ships a known credential."""
    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=group))
    return password
