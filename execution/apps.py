from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"

    def ready(self):
        from execution.services import node_removal_refusal
        from nodes.signals import node_removal_checks

        node_removal_checks.connect(node_removal_refusal, dispatch_uid="execution.node_removal_refusal")
