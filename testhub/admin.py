"""TestHub's Django admin site: titled for the lab, its sections in the order a lab manager works (the lab, its
runs, their results), and the figures that matter on its index."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models import Count, Q
from django.utils import timezone

# The lab, then what runs on it, then what came of it; who may do what last.
SECTIONS = ["catalog", "nodes", "execution", "reporting", "accounts", "auth", "knox", "authtoken"]
# The beat scheduler's tables are TestHub's to keep (templates make and change their entries): not a lab manager's.
HIDDEN_APPS = {"django_celery_beat"}


class TestHubAdminSite(admin.AdminSite):
    site_header = "TestHub"
    site_title = "TestHub admin"
    index_title = "The lab, its runs and their results"
    index_template = "admin/testhub_index.html"

    def get_app_list(self, request, app_label=None):
        apps = [app for app in super().get_app_list(request, app_label) if app["app_label"] not in HIDDEN_APPS]
        return sorted(apps, key=lambda app: _place(app["app_label"]))

    def index(self, request, extra_context=None):
        return super().index(request, {**(extra_context or {}), "lab_figures": lab_figures()})


def _place(app_label: str) -> int:
    return SECTIONS.index(app_label) if app_label in SECTIONS else len(SECTIONS)


def lab_figures() -> list[tuple[str, int, str]]:
    """(what, how many, where to see them) for the index: three counting queries."""
    from execution.models import Task
    from nodes.models import Node
    from reporting.models import Report

    nodes = Node.objects.aggregate(
        online=Count("pk", filter=Q(status=Node.Status.ONLINE)),
        offline=Count("pk", filter=Q(status=Node.Status.OFFLINE)),
    )
    running = Task.objects.filter(status=Task.Status.RUNNING).count()
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    reports = Report.objects.filter(created_at__gte=today).count()
    return [
        ("nodes online", nodes["online"], "/admin/nodes/node/?status__exact=online"),
        ("nodes offline", nodes["offline"], "/admin/nodes/node/?status__exact=offline"),
        ("tasks running", running, "/admin/execution/task/?status__exact=running"),
        ("reports today", reports, "/admin/reporting/report/"),
    ]


class TestHubAdminConfig(AdminConfig):
    default_site = "testhub.admin.TestHubAdminSite"
