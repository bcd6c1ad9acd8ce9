"""Prometheus metrics at /metrics, computed when scraped: queue depth per capability (which Flower does not
give), cases, tasks and nodes by status, and case and task durations over the last hour."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, F, Max
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from accounts.roles import is_lab_manager
from execution.models import Case, RejectedEvent, Task
from execution.selectors import capability_queues_in_use
from messaging import broker
from nodes.models import Node
from reporting.models import Report

WINDOW = timedelta(hours=1)


def _by_status(name: str, documentation: str, queryset, choices) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    counts = dict(queryset.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    for status in choices:
        family.add_metric([status], counts.get(status, 0))
    return family


def _durations(name: str, documentation: str, seconds_query) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["stat"])
    figures = seconds_query
    for stat in ("avg", "max"):
        value = figures[stat]
        family.add_metric([stat], value.total_seconds() if isinstance(value, timedelta) else (value or 0))
    return family


class TestHubCollector:
    def collect(self):
        depth = GaugeMetricFamily("testhub_queue_depth", "Cases waiting in a capability queue.", labels=["queue"])
        for queue, waiting in broker.queue_depths(capability_queues_in_use()).items():
            depth.add_metric([queue], waiting)
        yield depth
        yield _by_status("testhub_cases", "Cases by status.", Case.objects.order_by(), Case.Status.values)
        yield _by_status("testhub_tasks", "Tasks by status.", Task.objects.order_by(), Task.Status.values)
        yield _by_status("testhub_nodes", "Nodes by status.", Node.objects.order_by(), Node.Status.values)
        yield GaugeMetricFamily(
            "testhub_rejected_events",
            "Worker events set aside because they could not be recorded (see admin: rejected events).",
            value=RejectedEvent.objects.count(),
        )
        since = timezone.now() - WINDOW
        case_seconds = F("finished_at") - F("started_at")
        yield _durations(
            "testhub_case_duration_seconds",
            "Duration of the cases that ended in the last hour.",
            Case.objects.filter(finished_at__gte=since, started_at__isnull=False).aggregate(
                avg=Avg(case_seconds), max=Max(case_seconds)
            ),
        )
        yield _durations(
            "testhub_task_duration_seconds",
            "Duration of the tasks reported in the last hour.",
            Report.objects.filter(created_at__gte=since).aggregate(
                avg=Avg("duration_seconds"), max=Max("duration_seconds")
            ),
        )


_registry = CollectorRegistry(auto_describe=False)
_registry.register(TestHubCollector())


class MetricsPermission(BasePermission):
    message = "Metrics need a lab manager, or the TESTHUB_METRICS_TOKEN as a bearer token."

    def has_permission(self, request, view):
        token = settings.TESTHUB_METRICS_TOKEN
        # As bytes: a header may hold any character, and compare_digest takes only ASCII text.
        header = request.headers.get("Authorization", "").encode("utf-8", errors="surrogateescape")
        expected = f"Bearer {token}".encode()
        return bool(token and secrets.compare_digest(header, expected)) or is_lab_manager(request.user)


class MetricsView(APIView):
    permission_classes = [MetricsPermission]
    schema = None  # for Prometheus, not part of the REST API

    def get(self, request):
        return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
