from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"

    def ready(self):
        from catalog.signals import product_tool_unlink_checks
        from nodes.services import product_tool_installs_refusal

        product_tool_unlink_checks.connect(product_tool_installs_refusal, dispatch_uid="nodes.product_tool_installs")
