import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from nodes import crypto
from nodes.models import Node
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db


def _raw_password_column(node_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_encrypted FROM nodes_node WHERE id = %s", [node_id])
        return cursor.fetchone()[0]


def test_a_password_created_through_the_api_is_stored_encrypted_and_never_returned(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/nodes/", {"name": "n1", "ip": "127.0.0.5", "username": "lab", "password": "Tr0ub4dor&3"}
    )
    assert response.status_code == 201, response.json()
    assert "password" not in response.json() and response.json()["has_password"] is True
    assert "Tr0ub4dor&3" not in response.content.decode()
    assert "Tr0ub4dor&3" not in _raw_password_column(response.json()["id"])
    assert Node.objects.get(pk=response.json()["id"]).get_password() == "Tr0ub4dor&3"


def test_updating_a_node_without_a_password_keeps_the_stored_one(api, lab_manager):
    node = NodeFactory()
    node.set_password("first")
    node.save()
    response = api.as_user(lab_manager).patch(f"/api/nodes/{node.pk}/", {"slots": 2})
    assert response.status_code == 200
    node.refresh_from_db()
    assert node.get_password() == "first" and node.slots == 2


def test_no_password_reaches_the_log_when_a_node_is_created(api, lab_manager, caplog):
    with caplog.at_level(logging.DEBUG):
        api.as_user(lab_manager).post(
            "/api/nodes/", {"name": "n2", "ip": "127.0.0.6", "username": "lab", "password": "LogMeNot-42"}
        )
    assert "LogMeNot-42" not in caplog.text


def test_rotation_reencrypts_every_secret_under_the_newest_key(keys):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old_key)
    node = NodeFactory()
    node.set_password("rotate-me")
    node.set_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nnot checked here\n")
    node.save()

    keys(new_key, old_key)
    call_command("rotate_encryption_keys", stdout=io.StringIO())

    keys(new_key)  # the old key is gone: only a rotated token still decrypts
    node.refresh_from_db()
    assert node.get_password() == "rotate-me" and node.get_private_key().endswith("not checked here\n")


def test_every_field_holding_a_secret_is_rotated():
    names = {f"{model._meta.label}.{field}" for model, field in crypto.encrypted_fields()}
    assert {"nodes.Node.password_encrypted", "nodes.Node.private_key_encrypted"} <= names


def test_rotation_changes_nothing_when_a_secret_cannot_be_read(keys):
    keys(Fernet.generate_key().decode())
    readable, unreadable = NodeFactory(), NodeFactory()
    readable.set_password("fine")
    readable.save()
    keys(Fernet.generate_key().decode())
    unreadable.set_password("lost key")
    unreadable.save()
    before = _raw_password_column(readable.pk)
    keys(Fernet.generate_key().decode(), settings_key := Fernet.generate_key().decode())
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    assert _raw_password_column(readable.pk) == before and settings_key


def test_a_password_cannot_be_read_with_the_wrong_key(keys):
    keys(Fernet.generate_key().decode())
    node = NodeFactory()
    node.set_password("locked")
    node.save()
    keys(Fernet.generate_key().decode())
    node.refresh_from_db()
    with pytest.raises(ValueError, match="TESTHUB_ENCRYPTION_KEYS"):
        node.get_password()
