from django.conf import settings
from django.contrib import admin
from django.http import FileResponse, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.views import (
    CsrfView,
    MeView,
    SessionLoginApiView,
    SessionLoginView,
    SessionLogoutView,
    TokenLoginView,
    TokenLogoutView,
)
from catalog.api import ProductViewSet, TestToolViewSet
from execution.api import (
    CapabilityView,
    CaseNamesView,
    CaseViewSet,
    TaskCaseList,
    TaskViewSet,
    TemplateViewSet,
    WebhookHostViewSet,
)
from execution.results_api import (
    CaseHistoryView,
    FailureGroupsView,
    FlakyCaseList,
    MutedCaseViewSet,
    SignatureViewSet,
    TaskCompareView,
    VersionCompareView,
)
from nodes.api import NodeOperationViewSet, NodeViewSet
from reporting.api import ReportViewSet
from reporting.dashboard import DashboardView
from reporting.metrics import MetricsView

router = DefaultRouter()
router.include_format_suffixes = False  # no .json twins: half the patterns every request is matched against
router.register("products", ProductViewSet, basename="product")
router.register("tools", TestToolViewSet, basename="tool")
router.register("nodes", NodeViewSet, basename="node")
router.register("node-operations", NodeOperationViewSet, basename="node-operation")
router.register("tasks", TaskViewSet, basename="task")
router.register("cases", CaseViewSet, basename="case")
router.register("templates", TemplateViewSet, basename="template")
router.register("reports", ReportViewSet, basename="report")
router.register("webhook-hosts", WebhookHostViewSet, basename="webhook-host")
router.register("failure-signatures", SignatureViewSet, basename="failure-signature")
router.register("muted-cases", MutedCaseViewSet, basename="muted-case")


@require_GET
def frontend_page(request, path=""):
    """Every page of the web front end is its index.html (history-mode routes); the app then asks the API."""
    index = settings.FRONTEND_DIST / "index.html"
    if not index.is_file():
        return HttpResponse(
            "The web front end is not built: bin/run builds it (npm ci and npm run build in frontend/, Node 20+).",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response = FileResponse(index.open("rb"), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # the hashed assets it names are cached; the page itself never
    return response


urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/auth/token/", TokenLoginView.as_view(), name="auth-token"),
    path("api/auth/token/logout/", TokenLogoutView.as_view(), name="auth-token-logout"),
    path("api/auth/login/", SessionLoginView.as_view(), name="login"),
    path("api/auth/csrf/", CsrfView.as_view(), name="auth-csrf"),
    path("api/auth/session/", SessionLoginApiView.as_view(), name="auth-session"),
    path("api/auth/logout/", SessionLogoutView.as_view(), name="auth-logout"),
    path("api/auth/me/", MeView.as_view(), name="auth-me"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/dashboard/", DashboardView.as_view(), name="dashboard"),
    path("api/capability/", CapabilityView.as_view(), name="capability"),
    path("api/case-names/", CaseNamesView.as_view(), name="case-names"),
    path("api/tasks/<int:pk>/cases/", TaskCaseList.as_view(), name="task-cases"),
    path("api/tasks/<int:pk>/compare/", TaskCompareView.as_view(), name="task-compare"),
    path("api/tasks/<int:pk>/failure-groups/", FailureGroupsView.as_view(), name="task-failure-groups"),
    path("api/case-history/", CaseHistoryView.as_view(), name="case-history"),
    path("api/version-compare/", VersionCompareView.as_view(), name="version-compare"),
    path("api/flaky-cases/", FlakyCaseList.as_view(), name="flaky-cases"),
    path("api/", include(router.urls)),
    # The app's pages: any path but the API, admin, files and anything with a file extension (favicon.ico, ...).
    re_path(r"^(?!api/|admin/|static/|media/|metrics)(?P<path>[^.]*)$", frontend_page, name="frontend"),
]
