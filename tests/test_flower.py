"""Flower as TestHub runs it (testhub/flower.py): its broker page names every capability queue in use, though the
test machines' workers do not answer its broadcasts."""

from types import SimpleNamespace

import pytest
from django.db import connections

from testhub.celery import app
from testhub.flower import _database, queue_names
from tests.factories import NodeToolFactory


@pytest.mark.django_db(transaction=True)  # Flower reads the database from a thread of its own
def test_flowers_broker_page_names_the_capability_queues_besides_those_the_workers_said():
    install = NodeToolFactory()
    product, tool = install.node_product.product, install.tool
    answered = {"control@host": {"active_queues": [{"name": "control"}]}}
    handler = SimpleNamespace(application=SimpleNamespace(workers=answered), capp=app)
    try:
        assert queue_names(handler) == sorted(["control", f"cap.{product.slug}.{tool.slug}"])
    finally:
        _database.submit(connections.close_all).result()  # the test database is dropped after the run
