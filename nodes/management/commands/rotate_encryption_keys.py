"""Re-encrypt every stored secret under the first key of TESTHUB_ENCRYPTION_KEYS.

Rotation: put the new key first in TESTHUB_ENCRYPTION_KEYS (keep the old ones after it), restart, run this
command, then drop the old keys. Every field that holds a secret is re-encrypted (node passwords, private
keys, broker passwords), all in one transaction: if one cannot be read with the keys given, nothing changes.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from nodes import crypto


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest encryption key."

    @transaction.atomic
    def handle(self, *args, **options):
        for model, field in crypto.encrypted_fields():
            rows = model.objects.select_for_update().exclude(**{field: ""}).values_list("pk", field)
            rotated = 0
            for pk, token in rows:
                try:
                    new_token = crypto.rotate(token)
                except ValueError as error:
                    raise CommandError(
                        f"{model._meta.label} {pk}: its {field} cannot be read with TESTHUB_ENCRYPTION_KEYS ({error}). "
                        "Put back the key it was written with (after the new one); nothing was changed."
                    ) from None
                model.objects.filter(pk=pk).update(**{field: new_token})
                rotated += 1
            self.stdout.write(f"{model._meta.label}.{field}: {rotated} re-encrypted with the newest key.")
