"""Where a task's webhook may point: a host on the lab managers' allow-list, resolving to public addresses
unless that host is allowed private ones. Checked when the task is submitted and again, with a fresh
resolution, right before each delivery; the delivery then connects to the address that was checked."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from api.errors import DomainError
from execution.models import WebhookHost


class WebhookRefused(DomainError):
    code = "webhook_refused"
    field = "webhook_url"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL and the address to connect to for it."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str


def webhook_target(url: str) -> WebhookTarget:
    """The URL checked against the allow-list and resolved; WebhookRefused says what to change."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"{url!r} is not an http(s) URL with a host.")
    if parts.username or parts.password:
        raise WebhookRefused("A webhook URL may not hold a user name or password: sign with the webhook secret.")
    host = parts.hostname.rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused(f"{url!r} has an invalid port.") from None
    entry = _allow_list_entry(host)
    if entry is None:
        raise WebhookRefused(
            f"{host} is not on the allow-list of webhook hosts; ask a lab manager to add it "
            "(admin: Allowed webhook hosts), or use a host already there."
        )
    address = _checked_address(host, port, allow_private=entry.allow_private)
    path = parts.path or "/"
    return WebhookTarget(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port,
        path=f"{path}?{parts.query}" if parts.query else path,
        address=address,
    )


def _allow_list_entry(host: str) -> WebhookHost | None:
    candidates = [host] + [f"*.{host.split('.', index)[-1]}" for index in range(1, host.count(".") + 1)]
    entries = {entry.host: entry for entry in WebhookHost.objects.filter(host__in=candidates)}
    return next((entries[name] for name in candidates if name in entries), None)


def _checked_address(host: str, port: int, *, allow_private: bool) -> str:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookRefused(f"{host} cannot be resolved ({error}).") from None
    addresses = sorted({info[4][0] for info in found})
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise WebhookRefused(f"{host} resolves to {address}, which no webhook may reach.")
        if not ip.is_global and not allow_private:
            raise WebhookRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address; webhooks reach such "
                "addresses only when a lab manager allows them for this host."
            )
    return addresses[0]
