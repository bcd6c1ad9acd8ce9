"""A test machine's broker user, on the real Redis: its own queues, the events list (append only) and the
cancelled set (read only); nothing of the control plane's, nothing of another machine's."""

import pytest
import redis
from django.conf import settings

from nodes.services import node_broker_url
from tests.factories import capable_lab
from worker.protocol import CANCELLED_KEY, CHORD_QUEUE, CONTROL_QUEUE, EVENTS_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def machine():
    """What test code on a machine could get hold of: its worker's own connection."""
    product, tool, (node,) = capable_lab()
    other_product, other_tool, _ = capable_lab()
    client = redis.Redis.from_url(node_broker_url(node=node, base_url=settings.REDIS_URL))
    own = f"cap.{product.slug}.{tool.slug}"
    other = f"cap.{other_product.slug}.{other_tool.slug}"
    return client, node, own, other


def test_a_machine_reads_its_own_queues_and_appends_events(machine):
    client, node, own, _ = machine
    assert client.llen(own) == 0 and client.llen(f"node.{node.name}") == 0
    client.lpush(EVENTS_KEY, b"x")
    client.zrange(CANCELLED_KEY, 0, -1)
    client.lpush(CHORD_QUEUE, b"report callback")


@pytest.mark.parametrize(
    "action",
    [
        "another capability's queue",
        "the control queue",
        "reading the events",
        "removing the events",
        "a recorder's list",
        "cancelling a task",
        "the control workers' unacknowledged messages",
        "commanding the workers",
        "emptying the database",
        "listing keys",
        "changing users",
        "reading the configuration",
    ],
)
def test_a_machine_cannot_reach_what_is_not_its_own(machine, action):
    client, _, _, other = machine
    attempts = {
        "another capability's queue": lambda: client.brpop([other], timeout=0.01),
        "the control queue": lambda: client.lpush(CONTROL_QUEUE, b"run_template(1)"),
        "reading the events": lambda: client.lrange(EVENTS_KEY, 0, -1),
        "removing the events": lambda: client.delete(EVENTS_KEY),
        "a recorder's list": lambda: client.lrange(f"{EVENTS_KEY}:processing:control@host", 0, -1),
        "cancelling a task": lambda: client.zadd(CANCELLED_KEY, {"7": 1}),
        "the control workers' unacknowledged messages": lambda: client.hset("unacked", "tag", "forged"),
        "commanding the workers": lambda: client.publish(
            f"/{client.connection_pool.connection_kwargs['db']}.celery.pidbox", "x"
        ),
        "emptying the database": lambda: client.flushdb(),
        "listing keys": lambda: client.keys("*"),
        "changing users": lambda: client.acl_setuser("default", enabled=True),
        "reading the configuration": lambda: client.config_get("*"),
    }
    with pytest.raises(redis.exceptions.NoPermissionError):
        attempts[action]()


def test_a_machine_user_follows_what_is_installed(machine, django_capture_on_commit_callbacks):
    from nodes import services

    client, node, own, _ = machine
    with django_capture_on_commit_callbacks(execute=True):
        services.node_installs_set(node=node, installs=[])
        services.worker_queues_sync(node=node, consumed=set())  # its next heartbeat: it let go of the queue
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.llen(own)
