"""The demo lab: a small product with its own test suite (calculator/), pytest as the tool, two nodes."""

import secrets

from django.contrib.auth.models import Group, User
from django.db import transaction

from catalog.models import Product, ProductTool, TestTool
from nodes import services as node_services
from nodes.models import Node
from testhub.roles import LAB_MANAGERS, TESTERS

NODES = ("demo-node-1", "demo-node-2")


@transaction.atomic
def demo_lab_seed(*, install_root: str) -> dict[str, str]:
    """Create or refresh the demo lab; returns the logins, with passwords made afresh each time."""
    product, _ = Product.objects.get_or_create(name="demo-calculator", version="1.0")
    tool, _ = TestTool.objects.get_or_create(
        name="pytest",
        version="8",
        defaults={"command_template": "{tool_path}/pytest -q -p no:cacheprovider --rootdir {product_path} "
                                      "{product_path}/{case}"},
    )  # fmt: skip
    ProductTool.objects.get_or_create(product=product, tool=tool)
    for name in NODES:
        root = f"{install_root}/{name}"
        node = Node.objects.filter(name=name).first() or node_services.node_create(
            name=name, ip="127.0.0.1", username="testhub", install_root=root, managed=False
        )
        node_services.node_installs_set(
            node=node,
            installs=[node_services.ProductInstall(product=product, tools=[node_services.ToolInstall(tool=tool)])],
        )
    return {
        "admin": _login("admin", group=LAB_MANAGERS, superuser=True),
        "tester": _login("tester", group=TESTERS),
    }


def _login(username: str, *, group: str, superuser: bool = False) -> str:
    """A fresh random password each run: the demo never ships a known credential."""
    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=group))
    return password
