"""Schemathesis walks every operation in /api/schema/ with generated input: no 5xx, no answer off-schema."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.factories import CaseFactory, LabManagerFactory, ReportFactory, TaskFactory, capable_lab


@pytest.fixture
def api_schema(db):
    from testhub.wsgi import application

    # As Django's own test client does: keep the test's connection (and its transaction) open across requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def lab_token(db):
    product, tool, nodes = capable_lab(nodes=2)
    task = TaskFactory(product=product, tool=tool)
    CaseFactory.create_batch(3, task=task, node=nodes[0])
    ReportFactory(task=task)
    _, token = AuthToken.objects.create(user=LabManagerFactory())
    return token


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_with_a_server_error_or_off_its_schema(case, lab_token):
    from schemathesis.checks import not_a_server_error

    case.call_and_validate(
        headers={"Authorization": f"Token {lab_token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
