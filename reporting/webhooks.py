"""Telling other systems that a report is ready: a signed JSON POST, retried by the caller's task.

Two webhooks may want a report: the lab's own (TESTHUB_WEBHOOK_URL, set by whoever deploys TestHub) and
the task's (chosen by the tester who submitted it). The task's URL is checked again right before sending
(execution.webhooks: allow-listed host, public addresses unless allowed) and the connection goes to the very
address that was checked, so a name that resolves elsewhere by now reaches nothing. Redirects are never
followed. With TESTHUB_WEBHOOK_PROXY, every delivery goes through that HTTP proxy (the lab's way out).
"""

import hashlib
import hmac
import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings

from execution.webhooks import WebhookRefused, WebhookTarget, webhook_target
from reporting.models import Report

TIMEOUT_SECONDS = 10
GLOBAL, TASK = "global", "task"


class DeliveryFailed(Exception):
    """The receiver did not take the notification (network error or a non-2xx answer): try again later."""


class DeliveryRefused(Exception):
    """This notification must not be sent (the URL is no longer allowed, or the receiver redirects): give up."""


def report_summary(report: Report) -> dict:
    task, link = report.task, f"{settings.TESTHUB_PUBLIC_URL}/api/reports/{report.pk}/"
    rate = float(report.success_rate) if report.success_rate is not None else None
    return {
        "event": "report.ready",
        "task": {
            "id": task.pk,
            "name": task.name,
            "status": task.status,
            "product": str(task.product),
            "tool": str(task.tool),
        },
        "report": {
            **report.tally(),
            "success_rate": rate,
            "duration_seconds": report.duration_seconds,
            "url": link,
            "download_url": f"{link}download/",
        },
    }


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_targets(report: Report) -> list[str]:
    """Which webhooks want this report: by name, never by URL (a URL in a task message would be on show)."""
    return [target for target, url in ((GLOBAL, settings.TESTHUB_WEBHOOK_URL), (TASK, report.task.webhook_url)) if url]


def webhook_deliver(*, report: Report, target: str) -> None:
    """POST the report's summary to the lab's (GLOBAL) or the task's (TASK) webhook."""
    if target == GLOBAL:
        destination = _resolved(settings.TESTHUB_WEBHOOK_URL)  # the deployment's own choice: trusted
    else:
        try:
            destination = webhook_target(report.task.webhook_url)
        except WebhookRefused as refused:
            raise DeliveryRefused(refused.message) from None
    body = json.dumps(report_summary(report)).encode()
    headers = {"Content-Type": "application/json", "X-TestHub-Event": "report.ready"}
    if settings.TESTHUB_WEBHOOK_SECRET:
        headers["X-TestHub-Signature"] = signature(body, settings.TESTHUB_WEBHOOK_SECRET)
    status = _post(destination, body, headers)
    if 300 <= status < 400:
        raise DeliveryRefused(f"{destination.url} answered {status}: redirects are not followed.")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"{destination.url} answered {status}")


def _resolved(url: str) -> WebhookTarget:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, TypeError) as error:
        raise DeliveryFailed(f"{url}: {error}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(url=url, scheme=parts.scheme, host=parts.hostname, port=port, path=path, address=address)


def _post(destination: WebhookTarget, body: bytes, headers: dict) -> int:
    connection, path = _connection(destination)
    try:
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailed(f"{destination.url}: {error}") from None
    finally:
        connection.close()


def _connection(destination: WebhookTarget) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the checked address (or through the proxy) and the request target to send."""
    secure = destination.scheme == "https"
    if settings.TESTHUB_WEBHOOK_PROXY:
        proxy = urlsplit(settings.TESTHUB_WEBHOOK_PROXY)
        if secure:  # CONNECT host:port, then TLS to the host itself, through the tunnel
            connection = http.client.HTTPSConnection(
                proxy.hostname, proxy.port or 3128, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
            )
            connection.set_tunnel(destination.host, destination.port)
            return connection, destination.path
        connection = http.client.HTTPConnection(proxy.hostname, proxy.port or 3128, timeout=TIMEOUT_SECONDS)
        return connection, f"http://{destination.host}:{destination.port}{destination.path}"
    if secure:
        connection = http.client.HTTPSConnection(
            destination.host, destination.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(destination.host, destination.port, timeout=TIMEOUT_SECONDS)
    # Connect to the address that was checked, whatever the name resolves to now (TLS still checks the name).
    connection._create_connection = lambda address, timeout, source: socket.create_connection(
        (destination.address, destination.port), timeout, source
    )
    return connection, destination.path
