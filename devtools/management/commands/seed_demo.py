"""Create (or refresh) the demo lab and its two logins, and print how to sign in.

    manage.py seed_demo                                       # local nodes, installs only recorded
    manage.py seed_demo --machine demo-node-1=172.28.0.11 ... # real machines, managed over SSH (ADDRESS[:PORT])

With --machine, each named machine is reached as --ssh-user with the password in
$TESTHUB_DEMO_MACHINE_PASSWORD; the control worker checks it, installs the demo product and pytest, and
deploys its worker.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.demo import NODES, demo_lab_seed, demo_machines_seed


class Command(BaseCommand):
    help = "Create the demo lab (a product, pytest, two nodes) and the admin and tester logins."

    def add_arguments(self, parser):
        parser.add_argument("--install-root", default=None, help="default: ./data/demo locally, /opt/testhub remotely")
        parser.add_argument(
            "--machine",
            action="append",
            default=[],
            metavar="NAME=ADDRESS[:PORT]",
            help="a real test machine reached over SSH (repeat for each)",
        )
        parser.add_argument("--ssh-user", default="testhub")

    def handle(self, *args, install_root, machine, ssh_user, **options):
        if machine:
            machines = dict(self._machine(text) for text in machine)
            password = os.environ.get("TESTHUB_DEMO_MACHINE_PASSWORD", "")
            if not password:
                raise CommandError("Set TESTHUB_DEMO_MACHINE_PASSWORD to the machines' SSH password.")
            logins = demo_machines_seed(
                machines=machines, username=ssh_user, password=password, install_root=install_root or "/opt/testhub"
            )
            names = ", ".join(machines)
            self.stdout.write(self.style.SUCCESS(f"Demo lab on {names}: checks, installs and worker deploys queued."))
        else:
            logins = demo_lab_seed(install_root=install_root or str(settings.DATA_DIR / "demo"))
            self.stdout.write(
                self.style.SUCCESS(f"Demo lab ready: demo-calculator 1.0, pytest 8, nodes {', '.join(NODES)}")
            )
        for username, password in logins.items():
            self.stdout.write(f"  login: {username} / {password}")

    @staticmethod
    def _machine(text: str) -> tuple[str, tuple[str, int]]:
        name, _, where = text.partition("=")
        address, _, port = where.partition(":")
        if not (name and address) or (port and not port.isdigit()):
            raise CommandError(f"--machine {text!r}: write NAME=ADDRESS[:PORT], e.g. demo-node-1=172.28.0.11")
        return name, (address, int(port or 22))
