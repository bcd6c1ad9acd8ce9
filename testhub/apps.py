from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TestHubConfig(AppConfig):
    name = "testhub"
    verbose_name = "TestHub"

    def ready(self):
        from testhub.revisions import revisions_connect
        from testhub.roles import ensure_role_groups

        revisions_connect()

        post_migrate.connect(ensure_role_groups, dispatch_uid="testhub.ensure_role_groups")
