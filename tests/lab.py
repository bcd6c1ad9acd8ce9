"""A real lab on this machine: a control worker and test machines, each a worker process of its own.

Everything here starts real processes (Celery workers with the project's code, against the test
database and this run's Redis db) and stops them when the test ends.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from catalog.models import Product, ProductTool, TestTool
from nodes import services as node_services
from nodes.models import Node
from worker import manifest as worker_manifest

PROJECT = Path(__file__).resolve().parent.parent
LABTOOL = Path(__file__).resolve().parent / "labtool" / "labtool"


def wait_for(condition, *, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Lab:
    """Builds a product, a tool and nodes in the database and on disk, and runs their workers."""

    def __init__(self, root: Path, *, visibility_timeout: int = 3600):
        self.root = root
        self.visibility_timeout = visibility_timeout
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}
        self.beat: subprocess.Popen | None = None
        self.redis_url = settings.REDIS_URL
        self.redis = redis.Redis.from_url(self.redis_url)
        self._clean_redis()
        self.product = Product.objects.create(name="calc", version="1.0")
        self.tool = TestTool.objects.create(
            name="labtool", version="1", command_template="{tool_path}/labtool {product_path} {case}", case_timeout=60
        )
        ProductTool.objects.create(product=self.product, tool=self.tool)

    def _clean_redis(self):
        lock = self.redis.get("testhub:test-run")
        self.redis.flushdb()
        if lock:
            self.redis.set("testhub:test-run", lock, ex=7200)

    def env(self, **extra) -> dict:
        return {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": self.redis_url,
            "TESTHUB_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "TESTHUB_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            # Beat runs the liveness sweep every 2 s; the reconcilers only when a test calls them.
            "TESTHUB_RECONCILE_SECONDS": "3600",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def _start(self, argv: list[str], log_name: str, **env) -> subprocess.Popen:
        log = (self.root / f"{log_name}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=PROJECT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def start_control(self, name: str = "control", **env) -> subprocess.Popen:
        """A control worker: dispatch, recording, reports (two processes, like a small deployment), and the lab's
        beat with it (the liveness sweep)."""
        process = self._start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "testhub",
                "worker",
                "-Q",
                "control",
                "-n",
                f"{name}@{self.root.name}",
                "--concurrency",
                "2",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            name,
            **env,
        )
        self.start_beat()
        return process

    def start_beat(self) -> subprocess.Popen:
        """The lab's one beat, with the database scheduler, checking for due entries every second."""
        if self.beat is None:
            argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "testhub",
                "beat",
                "--max-interval",
                "1",
                "--loglevel",
                "INFO",
            ]
            self.beat = self._start(argv, "beat")
        return self.beat

    def add_node(
        self,
        name: str,
        *,
        broken: bool = False,
        slots: int = 1,
        status=Node.Status.UNKNOWN,
        product: Product | None = None,
    ) -> Node:
        """A node with the lab's product (calc 1.0, or `product`) and labtool 1 installed, in the database
        and in its manifest.

        broken: the manifest says the tool is there, but its folder is missing on the machine.
        """
        product = product or self.product
        home = self.root / name
        product_path, tool_path = home / "products" / product.slug, home / "tools" / self.tool.slug
        product_path.mkdir(parents=True)
        (product_path / "VERSION").write_text(f"{product}\n")
        if not broken:
            tool_path.mkdir(parents=True)
            shutil.copy(LABTOOL, tool_path / "labtool")
        node = node_services.node_create(
            name=name, ip="127.0.0.1", username="lab", install_root=str(home), slots=slots, managed=False
        )
        Node.objects.filter(pk=node.pk).update(status=status)
        node_services.node_installs_set(
            node=node,
            installs=[
                node_services.ProductInstall(
                    product=product,
                    install_path=str(product_path),
                    tools=[node_services.ToolInstall(tool=self.tool, install_path=str(tool_path))],
                )
            ],
        )
        worker_manifest.write(
            home / "manifest.json",
            [
                worker_manifest.entry(
                    product=product.name,
                    version=product.version,
                    path=product_path,
                    tools=[(self.tool.name, self.tool.version, tool_path)],
                )
            ],
        )
        return node

    def start_worker(self, node: Node, **env) -> subprocess.Popen:
        """The node's worker, configured as a deploy would: its settings in its environment."""
        home = self.root / node.name
        worker_env = node_services.node_worker_settings(node=node, broker_url=self.redis_url)
        worker_env.update(TESTHUB_VISIBILITY_TIMEOUT=str(self.visibility_timeout), **env)
        argv = [
            sys.executable,
            "-m",
            "worker",
            "--manifest",
            str(home / "manifest.json"),
            "--workdir",
            str(home / "work"),
        ]
        process = self._start(argv, f"worker-{node.name}", **worker_env)
        self.workers[node.name] = process
        return process

    def run(self, *names: str, slots: int = 1, **control_env) -> list[Node]:
        """The usual start: nodes by name, the control worker (with extra settings) and each node's worker."""
        nodes = [self.add_node(name, slots=slots) for name in names]
        self.start_control(**control_env)
        for node in nodes:
            self.start_worker(node)
        self.wait_online(*nodes)
        return nodes

    def wait_online(self, *nodes: Node, timeout: float = 30) -> None:
        names = [node.name for node in nodes]
        wait_for(
            lambda: Node.objects.online().filter(name__in=names).count() == len(names),
            timeout=timeout,
            message=f"nodes {names} online",
        )

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL a process and everything in its session, as a crash or a pulled plug would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def pool_children(self, process: subprocess.Popen) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def restart_redis_empty(self) -> None:
        """What a Redis restart without persistence does to this run: every connection drops, every key is gone.

        Done on this run's db index only (the server is shared): drop its clients, then empty it.
        """
        mine = [
            c["id"]
            for c in self.redis.client_list()
            if int(c.get("db", -1)) == self.redis.connection_pool.connection_kwargs.get("db", 0)
        ]
        self._clean_redis()
        for client_id in mine:
            with contextlib.suppress(redis.ResponseError):
                self.redis.client_kill_filter(_id=client_id, skipme=True)
        self._clean_redis()

    def logs(self) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}" for path in logs)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(process)
        self._clean_redis()
