"""The scratch databases the development commands may erase: made by bin/bench, and marked so.

A command that deletes tasks or floods the database refuses any other database, whatever its name, rather
than trust "it is PostgreSQL".
"""

from django.core.management.base import CommandError
from django.db import connection

MARKER = "testhub scratch database: the devtools commands may erase it"


def scratch_database_require() -> None:
    """CommandError unless this is a PostgreSQL database bin/bench made (its comment says so)."""
    if connection.vendor != "postgresql":
        raise CommandError("This command needs PostgreSQL: run it through bin/bench, which makes a scratch database.")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_database(), shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = current_database()"
        )
        name, comment = cursor.fetchone()
    if comment != MARKER:
        raise CommandError(
            f"The database {name!r} is not a scratch database made by bin/bench, and this command would erase or "
            "flood it: run it through bin/bench (or mark a database of your own with "
            f"COMMENT ON DATABASE ... IS '{MARKER}')."
        )
