"""compose.yaml cannot be run here (no Docker engine), so it is checked against the project instead."""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

PROJECT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((PROJECT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
# Read by the images (PostgreSQL, Redis, the demo machines), by Flower, or by compose and its commands.
OUTSIDE_SETTINGS = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH",
                    "TESTHUB_DEMO_MACHINE_PASSWORD", "TESTHUB_WEB_WORKERS"}  # fmt: skip


def _settings_read_from_the_environment() -> set[str]:
    sources = (PROJECT / "testhub" / "settings.py").read_text() + (PROJECT / "worker" / "__main__.py").read_text()
    return set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', sources)) | set(
        re.findall(r'environ\.get\("([A-Z_]+)"', sources)
    )


def _commands(service: dict) -> list[list[str]]:
    command = service.get("command")
    if command is None:
        return []
    words = command if isinstance(command, list) else shlex.split(command)
    if words[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in re.split(r"&&", words[2])]
    return [words]


def test_compose_runs_every_process_of_testhub():
    assert set(SERVICES) == {"db", "redis", "web", "control", "beat", "flower", "demo-node-1", "demo-node-2"}


def test_every_service_has_a_healthcheck():
    assert [name for name, service in SERVICES.items() if "healthcheck" not in service] == []


def test_redis_keeps_its_data_never_evicts_queued_work_and_asks_for_a_password():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert '--requirepass "$$REDIS_PASSWORD"' in command


def test_data_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    used = {volume.split(":")[0] for service in SERVICES.values() for volume in service.get("volumes", [])}
    assert used == declared == {"pgdata", "redisdata", "media"}


def test_there_is_one_beat_and_flowers_password_is_not_on_its_command_line():
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    assert "basic-auth" not in " ".join(SERVICES["flower"]["command"])
    assert "FLOWER_BASIC_AUTH=" in (PROJECT / "testhub.env.example").read_text()


def _example_settings() -> dict[str, str]:
    lines = (PROJECT / "testhub.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_the_control_plane_refuses_to_start_with_the_examples_placeholders(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, **_example_settings(), "TESTHUB_DATA_DIR": str(tmp_path)}
    started = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0 and "placeholder (CHANGE-ME)" in started.stderr


@pytest.mark.parametrize(("service", "variable"), [("db", "POSTGRES_PASSWORD"), ("redis", "REDIS_PASSWORD")])
def test_the_servers_refuse_to_start_with_the_examples_placeholder(service, variable):
    started = SERVICES[service].get("entrypoint") or SERVICES[service]["command"]
    assert f"case \"$${variable}\" in ''|*CHANGE-ME*) " in " ".join(started) and "exit 1" in " ".join(started)


def test_every_secret_in_the_example_is_a_placeholder():
    secrets = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY", "TESTHUB_ENCRYPTION_KEYS", "FLOWER_BASIC_AUTH",
               "TESTHUB_METRICS_TOKEN", "TESTHUB_WEBHOOK_SECRET", "TESTHUB_DEMO_MACHINE_PASSWORD"}  # fmt: skip
    example = _example_settings()
    assert all("CHANGE-ME" in example[name] for name in secrets)


def test_every_variable_compose_sets_is_one_the_project_reads():
    example = PROJECT / "testhub.env.example"
    names = {line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line and line[0] != "#"}
    for service in SERVICES.values():
        names |= set(service.get("environment", {}))
    unknown = names - _settings_read_from_the_environment() - OUTSIDE_SETTINGS
    assert unknown == set()


@pytest.mark.parametrize("name", ["web", "control", "beat", "flower"])
def test_every_control_plane_command_is_a_real_entry_point(name):
    from testhub.celery import app

    for words in _commands(SERVICES[name]):
        if words[0] == "celery":
            assert words[1:3] == ["-A", "testhub"] and app.main == "testhub"
            assert words[3] in {"worker", "beat", "flower", "inspect"}
        elif words[0] == "gunicorn":
            module, _, attribute = words[1].partition(":")
            assert hasattr(__import__(module, fromlist=["application"]), attribute or "application")
        elif words[:2] == ["python", "manage.py"]:
            assert words[2] in get_commands()
        elif words[:2] == ["python", "-m"]:
            module = __import__(words[2], fromlist=["main"])
            assert callable(module.main), f"{name}: {words[2]} has no main()"
        else:
            pytest.fail(f"{name}: unknown command {words}")


def test_the_test_machines_are_ssh_hosts_the_control_plane_deploys_to():
    dockerfile = (PROJECT / SERVICES["demo-node-1"]["build"]["dockerfile"]).read_text()
    entrypoint = (PROJECT / "docker" / "node-entrypoint.sh").read_text()
    assert "node-entrypoint.sh" in dockerfile and "exec /usr/sbin/sshd" in entrypoint
    assert "python -m worker" not in entrypoint and "*CHANGE-ME*" in entrypoint
    addresses = {SERVICES[name]["networks"]["default"]["ipv4_address"] for name in ("demo-node-1", "demo-node-2")}
    readme = (PROJECT / "README.md").read_text()
    assert all(f"={address}" in readme for address in addresses)


def test_the_readme_documents_the_commands_compose_runs():
    readme = (PROJECT / "README.md").read_text()
    for fragment in ["celery -A testhub worker -Q control", "celery -A testhub beat", "gunicorn testhub.wsgi",
                     "python -m worker", "docker compose up", "seed_demo --machine"]:  # fmt: skip
        assert fragment in readme
