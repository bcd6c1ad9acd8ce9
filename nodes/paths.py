"""Install paths on a test machine: absolute, normalised, and inside the node's install root."""

import posixpath
import re

from django.core.exceptions import ValidationError

# Paths end up in shell commands, a systemd unit and a crontab line: no spaces, quotes, '%' or newlines.
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._/+-]*")
# What TestHub itself keeps directly in an install root.
RESERVED_NAMES = frozenset({"worker", "work", ".incoming", "manifest.json"})


def _plain(value: str) -> None:
    if not _PATH_CHARACTERS.fullmatch(value):
        raise ValidationError(f"{value!r}: use only letters, digits and . _ + - / in install paths.")


def validate_install_root(value: str) -> None:
    _plain(value)
    if not value.startswith("/"):
        raise ValidationError("The install root must be an absolute path, e.g. /opt/testhub.")
    if _climbs(value):
        raise ValidationError("The install root must not contain '..'.")
    if posixpath.normpath(value) == "/":
        raise ValidationError("The install root cannot be '/': choose a folder such as /opt/testhub.")


def _climbs(value: str) -> bool:
    return ".." in value.split("/")


def resolve_install_path(*, root: str, path: str, default: str) -> str:
    """The absolute path for an install: `path` (absolute or relative to `root`) or `default` under `root`.

    Raises ValidationError when the path climbs out of the root.
    """
    candidate = (path or "").strip() or default
    _plain(candidate)
    if _climbs(candidate):
        raise ValidationError(f"The install path {candidate!r} must not contain '..': keep it inside {root}.")
    absolute = posixpath.normpath(posixpath.join(root, candidate))
    root = posixpath.normpath(root)
    if absolute == root or not absolute.startswith(root + "/"):
        raise ValidationError(f"The install path {candidate!r} must be a folder inside the node's install root {root}.")
    if absolute[len(root) + 1 :].split("/")[0] in RESERVED_NAMES:
        reserved = ", ".join(sorted(RESERVED_NAMES))
        raise ValidationError(
            f"The install path {candidate!r} is TestHub's own ({reserved} in the root): pick another."
        )
    return absolute
