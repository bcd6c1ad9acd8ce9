"""Every GET endpoint asks the database the same number of questions however much there is to show."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from execution.models import TaskTemplate, WebhookHost
from nodes.models import NodeOperation
from tests.factories import (
    CaseFactory,
    NodeFactory,
    NodeProductFactory,
    NodeToolFactory,
    ProductTestResultFactory,
    ProductToolFactory,
    ReportFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db


def _lab(size: int) -> dict:
    """`size` of everything: tasks with cases on nodes and reports, products with tools and results, nodes with
    installs, operations, templates, webhook hosts. Returns the ids the detail endpoints ask for."""
    nodes = NodeFactory.create_batch(size)
    links = [ProductToolFactory() for _ in range(size)]
    for node, link in zip(nodes, links, strict=True):
        NodeToolFactory(node_product=NodeProductFactory(node=node, product=link.product), tool=link.tool)
        ProductTestResultFactory(product=link.product)
        NodeOperation.objects.create(node=node, node_name=node.name, kind=NodeOperation.Kind.CHECK)
    tasks = []
    for _ in range(size):
        task = TaskFactory(product=links[0].product, tool=links[0].tool)
        for node in nodes:
            CaseFactory(task=task, node=node, status="passed")
            CaseFactory(task=task, node=node, status="failed")
        ReportFactory(task=task)
        TaskTemplate.objects.create(name=f"nightly {task.pk}", product=task.product, tool=task.tool, cases=["a"])
        WebhookHost.objects.create(host=f"hooks{task.pk}.example.com")
        tasks.append(task)
    task = tasks[0]
    return {
        "task": task.pk,
        "case": task.cases.first().pk,
        "report": task.report.pk,
        "product": links[0].product.pk,
        "node": nodes[0].pk,
    }


ENDPOINTS = [
    "/api/tasks/",
    "/api/tasks/?status=queued&product={product}",
    "/api/tasks/?mine=true",
    "/api/tasks/{task}/",
    "/api/tasks/{task}/cases/",
    "/api/tasks/{task}/cases/?status=failed",
    "/api/cases/",
    "/api/cases/{case}/",
    "/api/reports/",
    "/api/reports/{report}/",
    "/api/products/",
    "/api/products/{product}/",
    "/api/products/{product}/tools/",
    "/api/products/{product}/test-result/",
    "/api/tools/",
    "/api/nodes/",
    "/api/nodes/{node}/",
    "/api/node-operations/",
    "/api/templates/",
    "/api/webhook-hosts/",
]


def _queries(api, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path)
    assert response.status_code == 200, (path, response.content[:300])
    return len(captured.captured_queries)


def test_each_get_endpoint_asks_as_often_for_a_big_lab_as_for_a_small_one(api, lab_manager):
    small = _lab(1)
    api.as_user(lab_manager)
    small_counts = {path: _queries(api, path.format(**small)) for path in ENDPOINTS}
    big = _lab(4)  # the first lab's rows stay: the big one has five of everything
    assert {path: _queries(api, path.format(**big)) for path in ENDPOINTS} == small_counts
