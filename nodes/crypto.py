"""Encryption at rest for credentials (Fernet tokens, keys from the environment)."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])


def reset_keys() -> None:
    """Forget the cached keys (after settings change, e.g. in a rotation)."""
    _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("The stored secret cannot be decrypted with TESTHUB_ENCRYPTION_KEYS.") from None


def rotate(token: str) -> str:
    """Re-encrypt a token under the first (newest) key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError("The stored secret cannot be decrypted with TESTHUB_ENCRYPTION_KEYS.") from None


class EncryptedTextField(models.TextField):
    """A secret kept as a Fernet token: written with encrypt(), read with decrypt(), never shown.

    Only a marker: reading stays explicit (a model method that decrypts), so a secret is never decrypted by
    accident (in a serializer, an admin page, a log). `manage.py rotate_encryption_keys` finds every one.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that holds a secret, in every installed app."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]
