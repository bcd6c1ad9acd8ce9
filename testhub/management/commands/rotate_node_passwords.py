"""Re-encrypt every stored node password under the first key of TESTHUB_ENCRYPTION_KEYS.

Rotation: put the new key first in TESTHUB_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then drop the old keys.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from nodes.models import Node
from testhub import crypto


class Command(BaseCommand):
    help = "Re-encrypt node passwords with the newest encryption key."

    @transaction.atomic
    def handle(self, *args, **options):
        rotated = 0
        for node in Node.objects.select_for_update().exclude(password_encrypted="").only("pk", "password_encrypted"):
            node.password_encrypted = crypto.rotate(node.password_encrypted)
            node.save(update_fields=["password_encrypted"])
            rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} node password(s) with the newest key.")
