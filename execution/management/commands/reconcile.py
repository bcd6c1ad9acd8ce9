from django.core.management.base import BaseCommand

from execution.services import reconcile


class Command(BaseCommand):
    help = "Finish tasks whose chord can no longer finish by itself (the control plane runs this periodically)."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=int, default=None, help="seconds a dispatch may take (default: setting)")

    def handle(self, *args, grace, **options):
        outcome = reconcile(grace_seconds=grace)
        self.stdout.write(str(outcome))
