"""Give failure signatures (execution.signatures) to failed cases recorded before TestHub made them.

    python manage.py sign_failures

Cases recorded since are signed as they are recorded; running it again signs only what is still unsigned.
"""

from django.core.management.base import BaseCommand

from execution.services import failures_sign_earlier


class Command(BaseCommand):
    help = "Sign the failed and errored cases that have no failure signature yet."

    def handle(self, *args, **options):
        signed = failures_sign_earlier()
        self.stdout.write(f"{signed} failed or errored cases signed.")
