"""Products and tools get a stored, unique slug: their queues and install folders are named after it, so two
names that differ only in case or accents ("calc", "Calc") never share a queue or a folder."""

from django.db import migrations, models

from worker.protocol import slug as plain_slug


def fill(apps, schema_editor):
    for model_name in ("Product", "TestTool"):
        model = apps.get_model("catalog", model_name)
        taken = set()
        for row in model.objects.order_by("pk"):
            base = plain_slug(f"{row.name}-{row.version}") or "unnamed"
            candidate, number = base, 2
            while candidate in taken:
                candidate, number = f"{base}-{number}", number + 1
            taken.add(candidate)
            model.objects.filter(pk=row.pk).update(slug=candidate)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_testtool_file")]

    operations = [
        migrations.AddField("product", "slug", models.CharField(max_length=160, null=True, editable=False)),
        migrations.AddField("testtool", "slug", models.CharField(max_length=160, null=True, editable=False)),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            "product",
            "slug",
            models.SlugField(
                editable=False,
                help_text="Names its capability queues and install folders; set once, when it is created, unique.",
                max_length=160,
                unique=True,
            ),
        ),
        migrations.AlterField(
            "testtool",
            "slug",
            models.SlugField(
                editable=False,
                help_text="Names its capability queues and install folders; set once, when it is created, unique.",
                max_length=160,
                unique=True,
            ),
        ),
    ]
