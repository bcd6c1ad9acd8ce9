from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    """Who may do what: the lab-manager and tester roles (Django groups), API tokens and logins."""

    name = "accounts"

    def ready(self):
        from accounts.roles import ensure_role_groups

        post_migrate.connect(ensure_role_groups, dispatch_uid="accounts.ensure_role_groups")
