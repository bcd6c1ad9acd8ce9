"""The API's main queries at lab scale, on real PostgreSQL: each page reads an index range, never every case.

A history of 300,000 cases (one task of 100,000) is written by the same generator the benchmark uses; every
query the main endpoints run is EXPLAINed, and a sequential scan of the case table fails the test.
"""

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devtools.history import history_generate
from execution.models import Case, Task

pytestmark = pytest.mark.django_db


def _cursor_at(position: int) -> str:
    """A cursor that starts a page of a task's cases after the case with id `position` (DRF's own format)."""
    return base64.b64encode(f"p={position}".encode()).decode()


def _plans(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    plans = []
    for query in captured.captured_queries:
        if Case._meta.db_table in query["sql"]:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {query['sql']}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def test_no_main_query_of_the_api_reads_every_case(api, tester):
    history = history_generate(tasks=300, cases=300_000, big_task_cases=100_000, nodes=10)
    big = Task.objects.get(pk=history.big_task_id)
    deep = Case.objects.filter(task=big).order_by("id").values_list("id", flat=True)[90_000]
    case = Case.objects.filter(task=big, status="failed").first()
    client = api.as_user(tester)
    urls = [
        "/api/tasks/?page_size=50",
        "/api/tasks/?status=finished&page_size=50",
        f"/api/tasks/?product={big.product_id}&page_size=50",
        "/api/tasks/?mine=true&search=nightly",
        f"/api/tasks/{big.pk}/",
        f"/api/tasks/{big.pk}/cases/?page_size=50",
        f"/api/tasks/{big.pk}/cases/?status=failed&page_size=50",
        f"/api/tasks/{big.pk}/cases/?page_size=50&cursor={_cursor_at(deep)}",
        f"/api/tasks/{big.pk}/cases/?search=test_case_9999",
        f"/api/cases/{case.pk}/",
        f"/api/cases/?node={case.node_id}&status=running",
        "/api/cases/?status=failed&page_size=50",
        "/api/reports/?page_size=50",
    ]
    for url in urls:
        for plan in _plans(client, url):
            assert f"Seq Scan on {Case._meta.db_table} " not in plan, f"{url}:\n{plan}"  # (not casetrack)
