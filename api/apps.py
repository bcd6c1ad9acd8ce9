from django.apps import AppConfig


class ApiConfig(AppConfig):
    """What every API view shares: errors and their 4xx answers, pages, parsers, renderers, and the answers kept
    by revision (the revisions every model's writes bump)."""

    name = "api"
    verbose_name = "API"

    def ready(self):
        from messaging.revisions import revisions_connect

        revisions_connect()
