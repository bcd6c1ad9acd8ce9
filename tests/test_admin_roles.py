"""Django admin obeys the roles: a tester who is staff may look, never change the lab or run its actions.

The walk covers every model admin registered and every action each offers, with a populated lab, so a
new admin page or action that forgets the role check fails here.
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts.roles import TESTERS
from execution.models import FailureSignature, MutedCase, RejectedEvent, ShareWeight, TaskTemplate
from nodes.models import Node, NodeOperation
from testhub.admin import HIDDEN_APPS
from tests.factories import CaseFactory, NodeToolFactory, ProductTestResultFactory, ReportFactory

pytestmark = pytest.mark.django_db
OFFERED_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGZmoT86GA1m3rG4Cjw8XIbd/QovAb7n7l+w0/JSg77"


@pytest.fixture
def populated_lab():
    install = NodeToolFactory(node_product__node__managed=True, node_product__node__offered_host_key=OFFERED_HOST_KEY)
    node, product, tool = install.node_product.node, install.node_product.product, install.tool
    product.tool_links.create(tool=tool)
    CaseFactory(task__product=product, task__tool=tool, node=node, status="passed")
    ReportFactory()
    ProductTestResultFactory(product=product)
    TaskTemplate.objects.create(name="nightly", product=product, tool=tool, cases=["a"])
    RejectedEvent.objects.create(node=node.name, reason="Invalid JSON", payload="{")
    NodeOperation.objects.create(node=node, node_name=node.name, kind="check")
    ShareWeight.objects.create(group=Group.objects.get(name=TESTERS), weight=2)
    MutedCase.objects.create(product_name=product.name, tool=tool, name="noisy")
    FailureSignature.objects.create(product_name=product.name, tool=tool, digest="0" * 40, title="Error: x")


@pytest.fixture
def staff_tester_client(tester):
    tester.is_staff = True
    tester.save()
    client = Client()
    client.force_login(tester)
    return client


def _snapshot() -> dict:
    """Every row of every model admin shows, plus what actions create: the whole lab as data."""
    models = [*admin.site._registry, NodeOperation]
    return {model._meta.label: sorted(map(repr, model.objects.values())) for model in models}


def _registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_the_walk_covers_the_lab_managers_actions():
    actions = {name for _, model_admin in _registered() for name in (model_admin.actions or [])}
    assert {"check_machine", "deploy_worker", "start_maintenance", "accept_offered_host_key", "run_now"} <= actions


@pytest.mark.parametrize(("model", "model_admin"), _registered(), ids=lambda item: getattr(item, "__name__", ""))
def test_a_staff_tester_runs_no_admin_action(staff_tester_client, populated_lab, model, model_admin):
    before = _snapshot()
    selected = list(model.objects.values_list("pk", flat=True))
    for action in [*(model_admin.actions or []), "delete_selected"]:
        staff_tester_client.post(_url(model, "changelist"), {"action": action, "_selected_action": selected})
    assert _snapshot() == before


@pytest.mark.parametrize(("model", "model_admin"), _registered(), ids=lambda item: getattr(item, "__name__", ""))
def test_a_staff_tester_can_add_change_or_delete_nothing_in_admin(
    staff_tester_client, populated_lab, model, model_admin
):
    before = _snapshot()
    assert staff_tester_client.get(_url(model, "add")).status_code == 403
    assert staff_tester_client.post(_url(model, "add"), {}).status_code == 403
    for obj in model.objects.all()[:2]:
        change = staff_tester_client.get(_url(model, "change", obj.pk))
        assert change.status_code in (403, 302) or (change.status_code == 200 and b'name="_save"' not in change.content)
        assert staff_tester_client.post(_url(model, "change", obj.pk), {}).status_code in (403, 302)
        assert staff_tester_client.get(_url(model, "delete", obj.pk)).status_code in (403, 302)
        assert staff_tester_client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code in (403, 302)
    assert _snapshot() == before


def test_a_staff_tester_still_reads_the_lab_in_admin(staff_tester_client, populated_lab):
    for model in (Node, TaskTemplate, RejectedEvent):
        assert staff_tester_client.get(_url(model, "changelist")).status_code == 200


def test_a_lab_manager_runs_the_actions(client, lab_manager, populated_lab):
    client.force_login(lab_manager)
    node = Node.objects.get()
    client.post(_url(Node, "changelist"), {"action": "start_maintenance", "_selected_action": [node.pk]})
    assert Node.objects.get(pk=node.pk).status == Node.Status.MAINTENANCE


# The queries each kind of admin page may run, as a lab manager with the populated lab: its budget. A page over it
# reads something per row or per field it shows.
QUERY_BUDGET = {"index": 10, "changelist": 12, "add": 12, "change": 20}


def _pages(model, model_admin):
    yield "changelist", _url(model, "changelist")
    yield "add", _url(model, "add")
    for obj in model.objects.all()[:2]:
        yield "change", _url(model, "change", obj.pk)


def _queries(client, url) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        status = client.get(url).status_code
    return status, len(captured)


@pytest.fixture
def lab_manager_client(lab_manager):
    client = Client()
    client.force_login(lab_manager)
    return client


def test_the_admin_index_shows_the_lab_runs_and_results_with_their_counts_within_its_budget(
    lab_manager_client, populated_lab
):
    status, queries = _queries(lab_manager_client, "/admin/")
    page = lab_manager_client.get("/admin/").content.decode()
    assert status == 200 and queries <= QUERY_BUDGET["index"], queries
    assert "| TestHub admin</title>" in page and "The lab, its runs and their results" in page
    sections = [page.index(f'id="{app}"') if f'id="{app}"' in page else page.index(f"app-{app}") for app in
                ("catalog", "nodes", "execution", "reporting")]  # fmt: skip
    assert sections == sorted(sections)
    assert "Nodes online" in page and "Tasks running" in page and "Reports today" in page
    assert "django_celery_beat" not in page


@pytest.mark.parametrize(("model", "model_admin"), _registered(), ids=lambda item: getattr(item, "__name__", ""))
def test_every_admin_page_opens_for_a_lab_manager_within_its_query_budget(
    lab_manager_client, populated_lab, model, model_admin
):
    for kind, url in _pages(model, model_admin):
        status, queries = _queries(lab_manager_client, url)
        assert status in (200, 403), f"{url}: {status}"  # 403: nobody adds what TestHub writes itself
        assert queries <= QUERY_BUDGET[kind], f"{url}: {queries} queries (budget {QUERY_BUDGET[kind]})"


@pytest.mark.parametrize(("model", "model_admin"), _registered(), ids=lambda item: getattr(item, "__name__", ""))
def test_every_admin_action_runs_for_a_lab_manager_without_an_error(
    lab_manager_client, populated_lab, model, model_admin
):
    if model._meta.app_label in HIDDEN_APPS:
        pytest.skip("the beat scheduler's own pages: TestHub keeps its entries, not the lab manager")
    selected = list(model.objects.values_list("pk", flat=True)[:1])
    for action in model_admin.actions or []:
        response = lab_manager_client.post(_url(model, "changelist"), {"action": action, "_selected_action": selected})
        assert response.status_code in (200, 302), f"{model.__name__}.{action}: {response.status_code}"
