"""Start the TestHub worker on a test machine.

    python -m worker --node lab-01 --broker redis://control.lab:6379/0 --manifest /opt/testhub/manifest.json

It starts on its own queue `node.<name>` only: the control plane, answering its first heartbeat, tells it
which capability queues to consume (none while the node is in maintenance, quarantined or the worker is
too old), and adds and cancels them live when installs change. The manifest says where things are installed.
"""

import argparse
import os
import sys
from pathlib import Path

from celery import Celery

from worker.app import create_app
from worker.protocol import worker_hostname


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default=os.environ.get("TESTHUB_NODE"), help="the node's name in TestHub")
    parser.add_argument("--broker", default=os.environ.get("TESTHUB_BROKER_URL"), help="Redis URL of the broker")
    parser.add_argument(
        "--node-key", default=os.environ.get("TESTHUB_NODE_KEY"), help="the node's key, which signs its events"
    )
    parser.add_argument(
        "--case-env",
        default=os.environ.get("TESTHUB_CASE_ENV", ""),
        help="comma-separated names of more environment variables the cases may see (never TESTHUB_* or a broker's)",
    )
    parser.add_argument("--manifest", default=os.environ.get("TESTHUB_MANIFEST", "/opt/testhub/manifest.json"))
    parser.add_argument("--workdir", default=os.environ.get("TESTHUB_WORKDIR", str(Path.home() / ".testhub" / "work")))
    parser.add_argument("--slots", type=int, default=_env_int("TESTHUB_SLOTS", 1), help="cases run at once")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=_env_int("TESTHUB_VISIBILITY_TIMEOUT", 4 * 3600),
        help="must equal the control plane's TESTHUB_VISIBILITY_TIMEOUT",
    )
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    if not args.node:
        parser.error("--node (or TESTHUB_NODE) is required")
    if not args.broker:
        parser.error("--broker (or TESTHUB_BROKER_URL) is required")
    if not args.node_key:
        parser.error("--node-key (or TESTHUB_NODE_KEY) is required: the control plane gives it with the node")

    manifest_path = Path(args.manifest)
    app = create_app(
        node=args.node,
        node_key=args.node_key,
        broker_url=args.broker,
        manifest_path=manifest_path,
        workdir=Path(args.workdir),
        slots=args.slots,
        visibility_timeout=args.visibility_timeout,
        case_env=tuple(name.strip() for name in args.case_env.split(",") if name.strip()),
    )
    queues = [f"node.{args.node}"]
    exit_code = _run(
        app,
        [
            "worker",
            f"--hostname={worker_hostname(args.node)}",
            f"--queues={','.join(queues)}",
            f"--concurrency={args.slots}",
            f"--loglevel={args.loglevel}",
            "--pool=prefork",
            "--without-mingle",
            "--without-gossip",
        ],
    )
    sys.exit(exit_code)


def _run(app: Celery, argv: list[str]) -> int:
    """Run `celery worker` and return its exit code: 0 only after a requested shutdown, 1 after a fault, so a
    supervisor that restarts on failure restarts it. (app.worker_main and app.start both drop the code.)"""
    from celery.bin.celery import celery

    celery.params[0].default = app  # what --app would name
    # Without standalone mode click returns the code the command exits with, or None when it just returns.
    exit_code: int | None = celery.main(args=argv, standalone_mode=False)
    return exit_code or 0


if __name__ == "__main__":
    main()
