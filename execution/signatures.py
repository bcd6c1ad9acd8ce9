"""What a failure's log says caused it, reduced to what stays the same from run to run: the last error line and
the innermost stack frame, with numbers, hex addresses, paths, timestamps and temporary names normalised away.
Failures with one signature are one group (execution.results). Pure: no database in it.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

TITLE_LIMIT = 300
# Only the end of a log is read: where tools print the error, and a bound on the work per failure.
READ_LIMIT = 16 * 1024

# A line that states an error, the last one wins: a Python, Java or JS exception ("ValueError: ...",
# "java.lang.IllegalStateException: ..."), pytest's "E   ..." lines, "error:", "FAILED", "panic:", "fatal",
# "Traceback" (when nothing better follows), and TestHub's own notes (timeouts, machines that could not run it).
_ERROR_LINE = re.compile(
    r"^(\s*E\s{2,}\S"
    r"|\s*[\w.$]*(Error|Exception|Failure|Fault|Interrupt|Exit)\b"
    r"|.*\b(error|fatal|panic|failed|failure|assert(ion)?)\b\s*[:!]"
    r"|\s*FAIL(ED)?\b"
    r"|\s*\[TestHub: )",
    re.IGNORECASE,
)
# Stack frames, innermost last (Python, pytest's short form, Go) or innermost first (Java, JavaScript "at ...").
_PYTEST_E = re.compile(r"^\s*E\s{2,}")
_PYTHON_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<function>\S+)')
_SHORT_FRAME = re.compile(r"^(?P<file>[\w./\\-]+\.\w+):\d+:(?: in (?P<function>\S+))?")
_AT_FRAME = re.compile(r"^\s*at (?P<function>[\w.$<>]+) ?\((?P<file>[^():]+)(:\d+)*\)")

_NORMALISE: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(\.\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"(/tmp|/var/tmp|[A-Za-z]:\\Temp)[/\\][^\s'\"),:]*"), "<tmp>"),
    (re.compile(r"\b(tmp|temp)[\w-]{4,}", re.IGNORECASE), "<tmp>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}"), lambda match: "<path>/" + re.split(r"[/\\]", match[0])[-1]),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
]


@dataclass(frozen=True)
class Signature:
    digest: str  # what groups: the same for failures that differ only in what normalising takes out
    title: str  # readable: the normalised error line, and where it was raised
    failure: str  # the error line as it was printed


def normalised(text: str) -> str:
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def failure_signature(log: str) -> Signature:
    """The signature of a failed or errored case's log (an empty log has one too: "no output")."""
    lines = [line for line in log[-READ_LIMIT:].splitlines() if line.strip()]
    error = _error_line(lines)
    frame = _innermost_frame(lines)
    failure = error.strip()[:TITLE_LIMIT] if error else "no output"
    reason = normalised(error) if error else "no output"
    title = f"{reason} (in {frame})" if frame else reason
    digest = hashlib.sha1(f"{reason}\n{frame}".encode(), usedforsecurity=False).hexdigest()
    return Signature(digest=digest, title=title[:TITLE_LIMIT], failure=failure)


def _error_line(lines: list[str]) -> str:
    errors = [index for index, line in enumerate(lines) if _ERROR_LINE.match(line)]
    errors = [index for index in errors if not lines[index].lstrip().startswith("Traceback")] or errors
    if not errors:
        return lines[-1] if lines else ""
    # pytest explains a failure in "E" lines, and its closing summary ("FAILED path::test") names only the test:
    # the explanation says the cause.
    explained = [index for index in errors if _PYTEST_E.match(lines[index])]
    last = (explained or errors)[-1]
    # The explanation spans several "E" lines: the first of the last block says what failed.
    while last > 0 and _PYTEST_E.match(lines[last]) and _PYTEST_E.match(lines[last - 1]):
        last -= 1
    return _PYTEST_E.sub("", lines[last])


def _innermost_frame(lines: list[str]) -> str:
    """file:function of the innermost frame: the last Python-style frame, or the first "at" frame of the last
    Java/JS stack; the file's name only (where it was checked out changes)."""
    for line in reversed(lines):
        match = _PYTHON_FRAME.match(line) or _SHORT_FRAME.match(line)
        if match:
            return _frame(match["file"], match["function"])
    frames = [index for index, line in enumerate(lines) if _AT_FRAME.match(line)]
    if frames:
        # The last stack printed: its frames run back from the last one; the first of them is the innermost.
        first = frames[-1]
        while first - 1 in frames:
            first -= 1
        innermost = _AT_FRAME.match(lines[first])
        assert innermost is not None
        return _frame(innermost["file"], innermost["function"])
    return ""


def _frame(file: str, function: str | None) -> str:
    name = re.split(r"[/\\]", file)[-1]
    function = ".".join(function.split(".")[-2:]) if function else None  # Java's package says nothing more
    return f"{name}:{function}" if function else name
