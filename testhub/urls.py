from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.views import SessionLoginView, TokenLoginView, TokenLogoutView
from catalog.api import ProductViewSet, TestToolViewSet
from execution.api import CaseViewSet, TaskCaseList, TaskViewSet, TemplateViewSet, WebhookHostViewSet
from nodes.api import NodeOperationViewSet, NodeViewSet
from reporting.api import ReportViewSet
from reporting.metrics import MetricsView

router = DefaultRouter()
router.register("products", ProductViewSet, basename="product")
router.register("tools", TestToolViewSet, basename="tool")
router.register("nodes", NodeViewSet, basename="node")
router.register("node-operations", NodeOperationViewSet, basename="node-operation")
router.register("tasks", TaskViewSet, basename="task")
router.register("cases", CaseViewSet, basename="case")
router.register("templates", TemplateViewSet, basename="template")
router.register("reports", ReportViewSet, basename="report")
router.register("webhook-hosts", WebhookHostViewSet, basename="webhook-host")

urlpatterns = [
    path("", RedirectView.as_view(url="/api/docs/", permanent=False)),
    path("admin/", admin.site.urls),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/auth/token/", TokenLoginView.as_view(), name="auth-token"),
    path("api/auth/token/logout/", TokenLogoutView.as_view(), name="auth-token-logout"),
    path("api/auth/login/", SessionLoginView.as_view(), name="login"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/tasks/<int:pk>/cases/", TaskCaseList.as_view(), name="task-cases"),
    path("api/", include(router.urls)),
]
