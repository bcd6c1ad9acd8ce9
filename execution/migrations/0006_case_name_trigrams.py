"""Searching a task's cases by name (`?search=`, Django's icontains: UPPER(name) LIKE UPPER('%...%')) uses a
trigram index on PostgreSQL instead of reading every case. SQLite, the embedded default, goes without."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS case_name_trigrams ON execution_case USING gin (UPPER(name) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS case_name_trigrams")


class Migration(migrations.Migration):
    dependencies = [("execution", "0005_indexes_for_every_list")]

    operations = [migrations.RunPython(create, drop)]
