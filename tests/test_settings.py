import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from testhub.env import env_bool

PROJECT = Path(__file__).resolve().parent.parent


def _manage(*args, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DATABASE_URL")}
    environment.update(TESTHUB_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_the_deploy_check_is_clean_with_production_values(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        tmp_path=tmp_path,
        DEBUG="false",
        SECRET_KEY=Fernet.generate_key().decode() * 2,
        TESTHUB_HTTPS="true",
        ALLOWED_HOSTS="testhub.lab.internal",
        TESTHUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DATABASE_URL="postgres://testhub@db:5432/testhub",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_misspelt_boolean_stops_the_process_with_what_to_write(tmp_path):
    result = _manage("check", tmp_path=tmp_path, DEBUG="yes")
    assert result.returncode != 0
    assert "DEBUG must be 'true' or 'false'" in result.stderr


def test_a_malformed_encryption_key_stops_the_process_with_how_to_make_one(tmp_path):
    result = _manage("check", tmp_path=tmp_path, TESTHUB_ENCRYPTION_KEYS="not-a-key")
    assert result.returncode != 0
    assert "Fernet.generate_key" in result.stderr


def test_without_settings_the_embedded_default_is_sqlite_in_the_data_folder(tmp_path):
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(str(tmp_path / "testhub.sqlite3"))


@pytest.mark.parametrize("value, expected", [("true", True), ("FALSE", False), (" True ", True)])
def test_env_bool_reads_true_and_false(monkeypatch, value, expected):
    monkeypatch.setenv("TESTHUB_FLAG", value)
    assert env_bool("TESTHUB_FLAG", default=not expected) is expected


@pytest.mark.parametrize("typo", ["1", "yes", "on", "ture"])
def test_env_bool_refuses_anything_else(monkeypatch, typo):
    monkeypatch.setenv("TESTHUB_FLAG", typo)
    with pytest.raises(ImproperlyConfigured):
        env_bool("TESTHUB_FLAG", default=False)
