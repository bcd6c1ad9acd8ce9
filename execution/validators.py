"""The rules for names people give cases and tasks: checked here once, for the API, admin, templates and
commands alike. A name is one line of text a database, a spreadsheet and a command line can all take."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from api.errors import DomainError

CASE_NAME_MAX_LENGTH = 500
# Control characters (Unicode category Cc), line and paragraph separators, and lone surrogates.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PROBLEMS_SHOWN = 5


class InvalidCases(DomainError):
    code = "invalid_cases"
    field = "cases"


def one_line_problem(value: str) -> str | None:
    """Why `value` is not one line of plain text, or None when it is."""
    found = _NOT_ONE_LINE.search(value)
    return f"contains the control character U+{ord(found.group()):04X}" if found else None


def validate_one_line(value: str) -> None:
    """A Django/DRF validator for names: no control characters, no line breaks."""
    if problem := one_line_problem(value):
        raise ValidationError(f"The name {problem}; use plain text on one line.")


def case_names_check(names: list[str], *, allow_leading_dash: bool = False) -> list[str]:
    """The case names, trimmed, if every one is usable; otherwise InvalidCases naming the bad ones.

    Usable: 1 to 500 characters, one line of plain text, no repeats, not starting with '-' (the tool would
    read it as an option) unless the tool allows that, and at most TESTHUB_MAX_CASES_PER_TASK of them.
    """
    limit = settings.TESTHUB_MAX_CASES_PER_TASK
    if not names:
        raise InvalidCases("Give at least one case.")
    if len(names) > limit:
        raise InvalidCases(f"At most {limit} cases per task; this list has {len(names)}.")
    cleaned, seen, problems, repeated = [], set(), [], []
    for index, raw in enumerate(names):
        name = raw.strip()
        problem = _case_name_problem(name, allow_leading_dash=allow_leading_dash)
        if problem:
            problems.append(f"case {index} ({name[:80]!r}) {problem}")
        elif name in seen:
            repeated.append(name)
        seen.add(name)
        cleaned.append(name)
    if problems:
        raise InvalidCases(_listed(problems, "Some case names cannot be used: ") + ".")
    if repeated:
        raise InvalidCases(_listed([repr(name) for name in repeated], "Each case may appear once; repeated: ") + ".")
    return cleaned


def _case_name_problem(name: str, *, allow_leading_dash: bool) -> str | None:
    if not name or len(name) > CASE_NAME_MAX_LENGTH:
        return f"must be 1 to {CASE_NAME_MAX_LENGTH} characters"
    if problem := one_line_problem(name):
        return problem
    if name.startswith("-") and not allow_leading_dash:
        return "starts with '-', which the tool would take for an option (a tool can be set to allow it)"
    return None


def _listed(items: list[str], lead: str) -> str:
    shown = "; ".join(items[:_PROBLEMS_SHOWN])
    more = f" and {len(items) - _PROBLEMS_SHOWN} more" if len(items) > _PROBLEMS_SHOWN else ""
    return f"{lead}{shown}{more}"
