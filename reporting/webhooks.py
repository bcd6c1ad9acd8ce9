"""Telling other systems that a report is ready: a signed JSON POST, retried by the caller's task."""

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from django.conf import settings

from reporting.models import Report

TIMEOUT_SECONDS = 10


class DeliveryFailed(Exception):
    """The receiver did not take the notification (network error or a non-2xx answer): try again later."""


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
            "id": report.pk,
            "cancelled": report.cancelled,
            "total": report.total,
            "passed": report.passed,
            "failed": report.failed,
            "errors": report.errors,
            "not_run": report.not_run,
            "success_rate": rate,
            "duration_seconds": report.duration_seconds,
            "url": link,
            "download_url": f"{link}download/",
        },
    }


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_urls(report: Report) -> list[str]:
    return [url for url in dict.fromkeys([settings.TESTHUB_WEBHOOK_URL, report.task.webhook_url]) if url]


def webhook_deliver(*, report: Report, url: str) -> None:
    body = json.dumps(report_summary(report)).encode()
    headers = {"Content-Type": "application/json", "X-TestHub-Event": "report.ready"}
    if settings.TESTHUB_WEBHOOK_SECRET:
        headers["X-TestHub-Signature"] = signature(body, settings.TESTHUB_WEBHOOK_SECRET)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (http(s) only, URLField)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"{url} answered {response.status}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DeliveryFailed(f"{url}: {error}") from None
