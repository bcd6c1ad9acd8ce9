import re
import shlex
import string

from django.conf import settings
from django.core.exceptions import ValidationError

COMMAND_PLACEHOLDERS = frozenset({"case", "product_path", "tool_path", "workdir"})
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip", ".whl")
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def validate_command_template(value: str) -> None:
    try:
        arguments = shlex.split(value)
    except ValueError as error:
        raise ValidationError(f"The command cannot be split into arguments ({error}); check its quotes.") from None
    if not arguments:
        raise ValidationError("The command is empty.")
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    except ValueError as error:
        raise ValidationError(
            f"The command has a broken placeholder ({error}); write literal braces as {{{{ }}}}."
        ) from None
    unknown = fields - COMMAND_PLACEHOLDERS
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in sorted(COMMAND_PLACEHOLDERS))
        raise ValidationError(f"Unknown placeholder(s) {', '.join(sorted(unknown))}; use only {allowed}.")
    if "case" not in fields:
        raise ValidationError("The command must contain {case}, so that each case runs its own test.")


def validate_package_file_name(value: str) -> None:
    """Refuse names that could climb out of the upload folder or hide what the file is."""
    if not _SAFE_FILE_NAME.fullmatch(value) or ".." in value:
        raise ValidationError(
            f"File name {value!r} is not allowed: use at most 200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, with no folder part."
        )
    if not value.lower().endswith(PACKAGE_SUFFIXES):
        raise ValidationError(f"File name {value!r} must end with one of {', '.join(PACKAGE_SUFFIXES)}.")


def validate_case_timeout(value: int) -> None:
    """A case must end well before Redis would hand its message to another worker."""
    if not 1 <= value <= settings.TESTHUB_MAX_CASE_TIMEOUT:
        raise ValidationError(
            f"A case timeout must be 1 to {settings.TESTHUB_MAX_CASE_TIMEOUT} seconds "
            "(below TESTHUB_VISIBILITY_TIMEOUT, so a running case is never handed out twice)."
        )
