"""Turn every domain error into an answer a person can act on, never a 500."""

import logging

import redis
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from api.errors import DomainError

logger = logging.getLogger(__name__)


def _describe_protected(error: ProtectedError | RestrictedError) -> str:
    """What still uses the object, by kind, naming the first few: "2 installed products (calc 1.0 on n1, ...)"."""
    objects = list(error.protected_objects if isinstance(error, ProtectedError) else error.restricted_objects)
    by_kind: dict[str, list[str]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj._meta.verbose_name_plural), []).append(str(obj))
    used_by = ", ".join(
        f"{len(names)} {kind} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
        for kind, names in sorted(by_kind.items())
    )
    return f"It is still used by {used_by}; remove or finish those first."


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.field:
            body[exc.field] = [exc.message]
        return Response(body, status=exc.status_code)
    if isinstance(exc, ProtectedError | RestrictedError):
        return Response({"detail": _describe_protected(exc), "code": "in_use"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, redis.ConnectionError | BrokerError):
        logger.warning("broker unreachable while answering a request", exc_info=True)
        detail = "The broker (Redis) cannot be reached right now; nothing was changed. Try again shortly."
        return Response({"detail": detail, "code": "broker_unavailable"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        codes = exc.get_codes() if hasattr(exc, "get_codes") else None
        if isinstance(codes, str):
            response.data.setdefault("code", codes)  # what a client branches on: not_authenticated, throttled, ...
    return response
