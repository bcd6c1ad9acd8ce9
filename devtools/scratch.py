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


# bin/bench claims a free Redis db by setting this key in it; a command that flushes its Redis db needs it there.
REDIS_CLAIM_KEY = "testhub:bench"


def scratch_redis_require(client) -> None:
    """CommandError unless bin/bench claimed this Redis db for the run (the claim key is set in it)."""
    if not client.exists(REDIS_CLAIM_KEY):
        raise CommandError(
            f"The Redis db of REDIS_URL was not claimed by bin/bench (no {REDIS_CLAIM_KEY!r} key), and this command "
            "would flush it: run it through bin/bench."
        )
