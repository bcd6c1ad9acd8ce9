"""Create (or refresh) the demo lab and its two logins, and print how to sign in."""

import secrets

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.models import Product, ProductTool, TestTool
from nodes import services as node_services
from nodes.models import Node
from testhub.roles import LAB_MANAGERS, TESTERS

DEMO_NODES = ("demo-node-1", "demo-node-2")


class Command(BaseCommand):
    help = "Create the demo lab (a product, pytest, two online nodes) and the admin and tester logins."

    def add_arguments(self, parser):
        parser.add_argument("--install-root", default="/opt/testhub", help="Install root of the demo nodes.")

    @transaction.atomic
    def handle(self, *args, install_root, **options):
        product, _ = Product.objects.get_or_create(name="demo-calculator", version="1.0")
        tool, _ = TestTool.objects.get_or_create(
            name="pytest",
            version="8",
            defaults={"command_template": "{tool_path}/bin/pytest -q {product_path}/tests -k {case}"},
        )
        ProductTool.objects.get_or_create(product=product, tool=tool)
        for name in DEMO_NODES:
            node = Node.objects.filter(name=name).first() or node_services.node_create(
                name=name, ip="127.0.0.1", username="testhub", install_root=f"{install_root}/{name}"
            )
            Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE)
            node_services.node_installs_set(
                node=node,
                installs=[node_services.ProductInstall(product=product, tools=[node_services.ToolInstall(tool=tool)])],
            )
        logins = [self._login("admin", superuser=True, group=LAB_MANAGERS), self._login("tester", group=TESTERS)]
        nodes = ", ".join(DEMO_NODES)
        self.stdout.write(self.style.SUCCESS(f"Demo lab ready: demo-calculator 1.0, pytest 8, nodes {nodes}"))
        for username, password in logins:
            self.stdout.write(f"  login: {username} / {password}")

    def _login(self, username: str, *, group: str, superuser: bool = False) -> tuple[str, str]:
        """A fresh random password each run: the demo never ships a known credential."""
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = superuser
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=group))
        return username, password
