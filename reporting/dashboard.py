"""The lab at a glance for the web front end's first page: nodes by status, queue depths, running tasks, the
latest reports. Polled every second by every open dashboard: a few aggregate queries and one Redis pipeline."""

from django.db.models import Count
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import SubmitPermission
from execution.api import TaskSerializer
from execution.models import Case, Task
from messaging import broker
from nodes.capabilities import capability_queue
from nodes.models import Node, NodeTool
from reporting.models import Report

RUNNING_TASKS_SHOWN = 20
LATEST_REPORTS_SHOWN = 10


def nodes_by_status() -> dict[str, int]:
    """Every node status with its count; an online node running a case counts as busy."""
    counts = dict.fromkeys([*Node.Status.values, "busy"], 0)
    counts.update(Node.objects.order_by().values_list("status").annotate(n=Count("pk")))
    busy = (
        Case.objects.filter(status=Case.Status.RUNNING, node__status=Node.Status.ONLINE)
        .order_by()
        .values("node")
        .distinct()
        .count()
    )
    counts["busy"] = busy
    counts[Node.Status.ONLINE] -= busy
    return counts


def queues() -> list[dict]:
    """Each capability some node has installed or an unfinished task needs: its depth and its online nodes."""
    pairs = {
        (install.node_product.product, install.tool)
        for install in NodeTool.objects.select_related("node_product__product", "tool")
    }
    pairs |= {(task.product, task.tool) for task in Task.objects.unfinished().select_related("product", "tool")}
    by_queue = {capability_queue(product=product, tool=tool): (product, tool) for product, tool in pairs}
    depths = broker.queue_depths(sorted(by_queue))
    online_by_pair = {
        (product_id, tool_id): n
        for product_id, tool_id, n in NodeTool.objects.filter(node_product__node__in=Node.objects.online())
        .order_by()
        .values_list("node_product__product", "tool")
        .annotate(n=Count("node_product__node", distinct=True))
    }
    return [
        {
            "queue": queue,
            "product": str(product),
            "tool": str(tool),
            "depth": depths[queue],
            "online_nodes": online_by_pair.get((product.pk, tool.pk), 0),
        }
        for queue, (product, tool) in sorted(by_queue.items())
    ]


class QueueDepthSerializer(serializers.Serializer):
    queue = serializers.CharField()
    product = serializers.CharField()
    tool = serializers.CharField()
    depth = serializers.IntegerField(help_text="Cases waiting in the queue.")
    online_nodes = serializers.IntegerField(help_text="Online nodes that have the product with the tool installed.")


class ReportSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.IntegerField()
    task_name = serializers.CharField()
    success_rate = serializers.FloatField(allow_null=True)
    cancelled = serializers.BooleanField()
    total = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = serializers.IntegerField()
    not_run = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class DashboardSerializer(serializers.Serializer):
    """The dashboard's answer, part by part, for the schema (DashboardView writes it itself)."""

    nodes = inline_serializer(
        "DashboardNodes",
        {status: serializers.IntegerField() for status in [*Node.Status.values, "busy"]},
        help_text="How many nodes have each status, every status listed; an online node running a case counts as busy.",
    )
    queues = QueueDepthSerializer(many=True)
    running_tasks = TaskSerializer(many=True)
    latest_reports = ReportSummarySerializer(many=True)


class DashboardView(APIView):
    permission_classes = [SubmitPermission]

    @extend_schema(responses=DashboardSerializer)
    def get(self, request):
        running = (
            Task.objects.unfinished()
            .select_related("product", "tool", "created_by", "report")
            .order_by("-id")[:RUNNING_TASKS_SHOWN]
        )
        reports = Report.objects.filter(status=Report.Status.READY).select_related("task").order_by("-id")
        return Response(
            {
                "nodes": nodes_by_status(),
                "queues": queues(),
                "running_tasks": TaskSerializer(running, many=True, context={"request": request}).data,
                "latest_reports": [
                    {
                        **report.tally(),
                        "task": report.task_id,
                        "task_name": report.task.name,
                        "success_rate": report.success_rate,
                        "created_at": report.created_at,
                    }
                    for report in reports[:LATEST_REPORTS_SHOWN]
                ],
            }
        )
