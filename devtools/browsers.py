"""Browsers with a page open, as the web front end polls: each asks for its URLs once a second, sending the ETag of
the answer it holds (`If-None-Match`), so an unchanged answer is a 304 with no body. Plain asyncio sockets, so
hundreds of them cost the measuring process little."""

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Polled:
    answers: int = 0
    not_modified: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


async def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await reader.read()  # the server closes the connection after its answer
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    answer_headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), {key.lower(): value for key, value in answer_headers.items()}


async def _browser(port: int, paths: list[str], cookie: str, until: float, conditional: bool, polled: Polled) -> None:
    etags: dict[str, str] = {}
    while time.monotonic() < until:
        tick = time.monotonic()
        for path in paths:
            headers = {"Cookie": cookie, "Accept": "application/json"}
            if conditional and path in etags:
                headers["If-None-Match"] = etags[path]
            started = time.perf_counter()
            try:
                status, answer_headers = await _get(port, path, headers)
            except OSError:
                polled.errors += 1
                continue
            polled.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status == 304:
                polled.not_modified += 1
            elif status == 200:
                polled.answers += 1
                etags[path] = answer_headers.get("etag", "")
            else:
                polled.errors += 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


def browsers_poll(
    *, port: int, paths: list[str], cookies: list[str], seconds: float, conditional: bool = True
) -> Polled:
    """A page per cookie (a signed-in browser each) polling `paths` every second for `seconds`; their start is
    spread over the first second."""
    browsers = len(cookies)
    polled = Polled()

    async def all_of_them() -> None:
        until = time.monotonic() + seconds

        async def one(delay: float, cookie: str) -> None:
            await asyncio.sleep(delay)
            await _browser(port, paths, cookie, until, conditional, polled)

        await asyncio.gather(*(one(index / browsers, cookie) for index, cookie in enumerate(cookies)))

    asyncio.run(all_of_them())
    return polled


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its children, alive and reaped, from /proc."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in [pid, *_children(pid)]:
        try:
            fields = open(f"/proc/{process}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        total += (utime + stime + cutime + cstime) / ticks
    return total


def _children(pid: int) -> list[int]:
    try:
        found = open(f"/proc/{pid}/task/{pid}/children").read().split()  # noqa: SIM115
    except OSError:
        return []
    children = [int(child) for child in found]
    return [*children, *(grandchild for child in children for grandchild in _children(child))]
