"""Install paths on a test machine: absolute, normalised, and inside the node's install root."""

import posixpath

from django.core.exceptions import ValidationError


def validate_install_root(value: str) -> None:
    if not value.startswith("/"):
        raise ValidationError("The install root must be an absolute path, e.g. /opt/testhub.")
    if _climbs(value) or "\x00" in value:
        raise ValidationError("The install root must not contain '..' or NUL characters.")
    if posixpath.normpath(value) == "/":
        raise ValidationError("The install root cannot be '/': choose a folder such as /opt/testhub.")


def _climbs(value: str) -> bool:
    return ".." in value.split("/")


def resolve_install_path(*, root: str, path: str, default: str) -> str:
    """The absolute path for an install: `path` (absolute or relative to `root`) or `default` under `root`.

    Raises ValidationError when the path climbs out of the root.
    """
    candidate = (path or "").strip() or default
    if "\x00" in candidate or _climbs(candidate):
        raise ValidationError(f"The install path {candidate!r} must not contain '..': keep it inside {root}.")
    absolute = posixpath.normpath(posixpath.join(root, candidate))
    root = posixpath.normpath(root)
    if absolute == root or not absolute.startswith(root + "/"):
        raise ValidationError(f"The install path {candidate!r} must be a folder inside the node's install root {root}.")
    return absolute
