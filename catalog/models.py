from pathlib import PurePosixPath
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from catalog.validators import validate_case_timeout, validate_command_template
from messaging.revisions import CATALOG, RevisedModel
from worker.protocol import slug

SLUG_HELP = "Names its capability queues and install folders; set once, when it is created, unique."


def unique_slug(model: type[models.Model], text: str) -> str:
    """The slug of `text`, with -2, -3 ... when another row has it ("calc" and "Calc" share a plain slug)."""
    base = slug(text) or "unnamed"
    candidate, number = base, 2
    while model.objects.filter(slug=candidate).exists():
        candidate, number = f"{base}-{number}", number + 1
    return candidate


class Product(RevisedModel):
    revision_topic = CATALOG
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    slug = models.SlugField(max_length=160, unique=True, editable=False, help_text=SLUG_HELP)
    file = models.FileField(upload_to="products/%Y/%m/", blank=True, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    tools = models.ManyToManyField("TestTool", through="ProductTool", related_name="products", blank=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="product_name_version_unique")]

    def __str__(self):
        return f"{self.name} {self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = unique_slug(Product, f"{self.name}-{self.version}")
        super().save(*args, **kwargs)

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.file.name).name if self.file else ""


class TestTool(RevisedModel):
    revision_topic = CATALOG
    __test__ = False  # not a pytest test class, whatever its name says
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    slug = models.SlugField(max_length=160, unique=True, editable=False, help_text=SLUG_HELP)
    command_template = models.CharField(
        max_length=1000,
        validators=[validate_command_template],
        help_text=(
            "The command a node runs for one case, split into arguments like a shell would but never run "
            "through one. Placeholders: {case}, {product_path}, {tool_path}, {workdir}. "
            "Example: {tool_path}/bin/pytest {product_path}/tests -k {case}"
        ),
    )
    file = models.FileField(
        upload_to="tools/%Y/%m/",
        blank=True,
        max_length=300,
        help_text="The tool's files: an archive (.tar.gz, .tgz, .tar, .tar.xz, .tar.bz2, .zip, .whl) unpacked into "
        "the tool's install path on each node when it is installed there.",
    )
    allow_option_like_cases = models.BooleanField(
        "allow case names starting with '-'",
        default=False,
        help_text="Off: a case name starting with '-' is refused, since the tool would read it as an option "
        "(--junitxml=... writes a file). Turn on only for a tool whose command template puts '--' before {case}.",
    )
    case_timeout = models.PositiveIntegerField(
        default=600,
        validators=[validate_case_timeout],
        help_text="Seconds one case may run before it is stopped and counted as an error.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="tool_name_version_unique")]

    def __str__(self):
        return f"{self.name} {self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = unique_slug(TestTool, f"{self.name}-{self.version}")
        super().save(*args, **kwargs)

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.file.name).name if self.file else ""


class ProductTool(RevisedModel):
    """Which tools test which products: the drop-down a tester sees after picking a product."""

    revision_topic = CATALOG
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="tool_links")
    tool = models.ForeignKey(TestTool, on_delete=models.CASCADE, related_name="product_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product_id", "tool_id"]
        constraints = [models.UniqueConstraint(fields=["product", "tool"], name="product_tool_unique")]

    def __str__(self):
        return f"{self.tool} for {self.product}"


class ProductTestResult(RevisedModel):
    """One entry in a product's pass-rate history, from a TestHub report or an outside service."""

    revision_topic = CATALOG
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="test_results")
    pass_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Percent of counted cases that passed, 0 to 100.",
    )
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    report_url = models.URLField(blank=True, max_length=500)
    source = models.CharField(max_length=100, help_text="Who recorded it: 'testhub' or the outside service's name.")

    class Kind(models.TextChoices):
        FULL = "full", "Full run"
        RERUN = "rerun", "Rerun of some cases"
        CANCELLED = "cancelled", "Cancelled before every case ran"

    kind = models.CharField(
        max_length=20,
        choices=Kind.choices,
        default=Kind.FULL,
        help_text="Only a full run speaks for the whole product: a rerun or a cancelled run is shown apart.",
    )
    task = models.PositiveIntegerField(null=True, blank=True, help_text="The TestHub task it came from, if any.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["product", "-created_at"], name="result_product_recent")]

    def __str__(self):
        return f"{self.product}: {self.pass_rate}%"
