from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"

    def ready(self):
        from catalog.signals import product_tool_unlink_checks
        from execution.services import cases_requeue_from_silent_nodes, node_removal_refusal, product_tool_tasks_refusal
        from nodes.signals import node_removal_checks, nodes_went_silent

        node_removal_checks.connect(node_removal_refusal, dispatch_uid="execution.node_removal_refusal")
        nodes_went_silent.connect(cases_requeue_from_silent_nodes, dispatch_uid="execution.cases_requeue")
        product_tool_unlink_checks.connect(product_tool_tasks_refusal, dispatch_uid="execution.product_tool_tasks")
