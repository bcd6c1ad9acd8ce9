"""Create (or refresh) the demo lab and its two logins, and print how to sign in."""

from django.conf import settings
from django.core.management.base import BaseCommand

from testhub.demo import NODES, demo_lab_seed


class Command(BaseCommand):
    help = "Create the demo lab (a product, pytest, two nodes) and the admin and tester logins."

    def add_arguments(self, parser):
        parser.add_argument("--install-root", default=str(settings.DATA_DIR / "demo"))

    def handle(self, *args, install_root, **options):
        logins = demo_lab_seed(install_root=install_root)
        nodes = ", ".join(NODES)
        self.stdout.write(self.style.SUCCESS(f"Demo lab ready: demo-calculator 1.0, pytest 8, nodes {nodes}"))
        for username, password in logins.items():
            self.stdout.write(f"  login: {username} / {password}")
