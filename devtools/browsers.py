"""Browsers with a task page open, as the web front end follows it: each asks for the task once a second, sending
the ETag of the answer it holds (`If-None-Match`, so an unchanged answer is a 304 with no body), and asks for the
page's cases only when the task's answer changed (the case table follows the task: frontend CaseTable.vue). Plain
asyncio sockets, so hundreds of them cost the measuring process little."""

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Polled:
    answers: int = 0
    not_modified: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.answers + self.not_modified + self.errors

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


@dataclass
class _Answer:
    status: int
    etag: str
    body: bytes


class _Connection:
    """One browser's connection to the server, kept alive between requests as a browser keeps it, and opened
    again when the server has closed it (a sync worker closes after each answer; a keep-alive times out)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: dict[str, str]) -> _Answer:
        try:
            return await self._get(path, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()  # closed by the server meanwhile: once more on a new connection
            return await self._get(path, headers)

    async def _get(self, path: str, headers: dict[str, str]) -> _Answer:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers_back = {k.lower(): v for k, v in (line.split(": ", 1) for line in head[1:] if ": " in line)}
        body = await reader.readexactly(int(headers_back.get("content-length", "0")))
        if headers_back.get("connection", "").lower() == "close":
            self.close()
        return _Answer(int(head[0].split()[1]), headers_back.get("etag", ""), body)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class _Browser:
    def __init__(self, port: int, cookie: str, conditional: bool, polled: Polled) -> None:
        self.connection, self.cookie, self.conditional, self.polled = _Connection(port), cookie, conditional, polled
        self.held: dict[str, _Answer] = {}

    async def get(self, path: str) -> bool:
        """Ask for `path` as the front end does; True when the answer held for it changed."""
        headers = {"Cookie": self.cookie, "Accept": "application/json"}
        before = self.held.get(path)
        if self.conditional and before and before.etag:
            headers["If-None-Match"] = before.etag
        started = time.perf_counter()
        try:
            answer = await self.connection.get(path, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.polled.errors += 1
            return False
        self.polled.latencies_ms.append((time.perf_counter() - started) * 1000)
        if answer.status == 304:
            self.polled.not_modified += 1
            return False
        if answer.status != 200:
            self.polled.errors += 1
            return False
        self.polled.answers += 1
        self.held[path] = answer
        return before is None or before.body != answer.body

    async def follow(self, task_path: str, cases_path: str, until: float, *, naive: bool) -> None:
        while time.monotonic() < until:
            tick = time.monotonic()
            if await self.get(task_path) or naive:
                await self.get(cases_path)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        self.connection.close()


def browsers_follow(
    *, port: int, task_path: str, cases_path: str, cookies: list[str], seconds: float, naive: bool = False
) -> Polled:
    """A task page per cookie (a signed-in browser each) following the task for `seconds`; their start is spread
    over the first second. `naive`: the baseline, as a page without ETags that asks for both every second."""
    browsers = len(cookies)
    polled = Polled()

    async def all_of_them() -> None:
        until = time.monotonic() + seconds

        async def one(delay: float, cookie: str) -> None:
            await asyncio.sleep(delay)
            browser = _Browser(port, cookie, conditional=not naive, polled=polled)
            await browser.follow(task_path, cases_path, until, naive=naive)

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
