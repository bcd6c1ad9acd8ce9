import functools

import django_filters
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import SubmitPermission
from accounts.roles import is_lab_manager
from api.answers import RevisionCachedAnswers
from api.pagination import CursorPagination, OldestFirstCursorPagination
from api.renderers import PlainTextRenderer
from api.views import LookupUnfiltered
from catalog.models import Product, TestTool
from execution import services
from execution.counts import task_node_counts
from execution.models import Case, FailureSignature, Task, TaskTemplate, WebhookHost
from execution.results import case_marks
from execution.selectors import task_waiting
from execution.validators import CASE_NAME_MAX_LENGTH, validate_one_line
from messaging.revisions import CATALOG, NODES, TASKS, USERS
from nodes.capabilities import capability_queue
from nodes.models import Node


class CaseCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="cases_total")  # kept on the task as cases change, never recounted
    queued = serializers.IntegerField(source="cases_queued")
    running = serializers.IntegerField(source="cases_running")
    passed = serializers.IntegerField(source="cases_passed")
    failed = serializers.IntegerField(source="cases_failed")
    error = serializers.IntegerField(source="cases_error")
    cancelled = serializers.IntegerField(source="cases_cancelled")


class TaskLinksSerializer(serializers.Serializer):
    cases = serializers.URLField()
    report = serializers.URLField(allow_null=True)
    download = serializers.URLField(allow_null=True, help_text="The report's .xlsx, once there is one.")


class TaskSerializer(serializers.ModelSerializer):
    product_name = serializers.SerializerMethodField()
    tool_name = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    counts = CaseCountsSerializer(source="*", read_only=True)
    webhook_url = serializers.SerializerMethodField(
        help_text="The task's own webhook: shown to the tester who submitted it and to lab managers; empty otherwise."
    )
    progress = serializers.FloatField(read_only=True, help_text="Percent of cases that have ended, 0 to 100.")
    success_rate = serializers.SerializerMethodField(
        help_text="passed / (passed + failed) x 100 so far; once reported, the report's (muted cases left out); "
        "null before a case has passed or failed."
    )
    report = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "name",
            "product",
            "product_name",
            "tool",
            "tool_name",
            "priority",
            "case_timeout",
            "webhook_url",
            "status",
            "created_by",
            "rerun_of",
            "template",
            "counts",
            "progress",
            "success_rate",
            "report",
            "links",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_product_name(self, task) -> str:
        return str(task.product)

    def get_tool_name(self, task) -> str:
        return str(task.tool)

    def get_webhook_url(self, task) -> str:
        user = self.context["request"].user if "request" in self.context else None
        return task.webhook_url if user and (task.created_by_id == user.pk or is_lab_manager(user)) else ""

    def get_success_rate(self, task) -> float | None:
        return task.shown_success_rate

    @extend_schema_field(TaskLinksSerializer)
    def get_links(self, task) -> dict:
        request = self.context.get("request")

        def absolute(path: str) -> str:
            return request.build_absolute_uri(path) if request else path

        report = getattr(task, "report", None)
        return {
            "cases": absolute(f"/api/tasks/{task.pk}/cases/"),
            "report": absolute(f"/api/reports/{report.pk}/") if report else None,
            "download": absolute(f"/api/reports/{report.pk}/download/") if report and report.file else None,
        }

    def to_representation(self, task) -> dict:
        """The fields declared above, read straight off the task: the task list is the API's busiest answer and
        DRF's field-by-field lookups were most of its cost (tests/test_tasks_api.py holds the two equal)."""
        moment = self.fields["created_at"].to_representation
        report = getattr(task, "report", None)
        return {
            "id": task.pk,
            "name": task.name,
            "product": task.product_id,
            "product_name": str(task.product),
            "tool": task.tool_id,
            "tool_name": str(task.tool),
            "priority": task.priority,
            "case_timeout": task.case_timeout,
            "webhook_url": self.get_webhook_url(task),
            "status": task.status,
            "created_by": task.created_by.username if task.created_by_id else None,
            "rerun_of": task.rerun_of_id,
            "template": task.template_id,
            "counts": {
                "total": task.cases_total,
                "queued": task.cases_queued,
                "running": task.cases_running,
                "passed": task.cases_passed,
                "failed": task.cases_failed,
                "error": task.cases_error,
                "cancelled": task.cases_cancelled,
            },
            "progress": task.progress,
            "success_rate": self.get_success_rate(task),
            "report": report.pk if report else None,
            "links": self.get_links(task),
            "created_at": moment(task.created_at),
            "started_at": moment(task.started_at) if task.started_at else None,
            "finished_at": moment(task.finished_at) if task.finished_at else None,
        }


class NodeCountsSerializer(serializers.Serializer):
    node = serializers.CharField()
    total = serializers.IntegerField()
    running = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    error = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class RunningShareSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    task_name = serializers.CharField()
    cases = serializers.IntegerField()


class WaitingNodeSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Node.Status.choices)
    status_reason = serializers.CharField()
    installed = serializers.BooleanField(help_text="The product and the tool are both installed and ready.")
    slots = serializers.IntegerField()
    usable = serializers.BooleanField(help_text="Installed, online and heard from: it takes the task's cases.")
    running = RunningShareSerializer(many=True, help_text="What it runs now: cases per task.")


class WaitingSerializer(serializers.Serializer):
    queue = serializers.CharField(help_text="The capability queue the task's cases go to.")
    ahead = serializers.IntegerField(help_text="Cases that start before this task's next one: the sum of the three.")
    ahead_in_queue = serializers.IntegerField(help_text="Cases already handed out, waiting in the queue.")
    ahead_outranking = serializers.IntegerField(help_text="Cases of tasks of a higher priority (after aging).")
    ahead_taking_turns = serializers.IntegerField(help_text="Other users whose tasks take turns with this one.")
    capable_slots = serializers.IntegerField(help_text="Slots of the nodes that can run its cases now.")
    mean_case_seconds = serializers.FloatField(allow_null=True, help_text="Recent cases' mean duration here.")
    starts_in_seconds = serializers.IntegerField(allow_null=True, help_text="When its next case should start.")
    finishes_in_seconds = serializers.IntegerField(allow_null=True, help_text="When its last case should end.")
    reason = serializers.CharField(help_text="Why its cases wait, in a sentence.")
    nodes = WaitingNodeSerializer(many=True, help_text="Every node with its product and tool.")


class TaskDetailSerializer(TaskSerializer):
    by_node = serializers.SerializerMethodField(help_text="Each node's share of the task's cases, by status.")
    waiting = serializers.SerializerMethodField(
        help_text="While cases of the task are queued: why they wait, how many cases are ahead, the capable nodes "
        "and what they run, and ETAs from recent case durations. Null once none waits."
    )

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "by_node", "waiting"]
        read_only_fields = fields

    def to_representation(self, task) -> dict:
        return {**super().to_representation(task), "by_node": self.get_by_node(task), "waiting": self.get_waiting(task)}

    @extend_schema_field(WaitingSerializer(allow_null=True))
    def get_waiting(self, task) -> dict | None:
        return task_waiting(task)

    @extend_schema_field(NodeCountsSerializer(many=True))
    def get_by_node(self, task) -> list[dict]:
        nodes: dict[str, dict] = {}
        for (node, case_status), number in sorted(task_node_counts(task.pk).items()):
            row = nodes.setdefault(node, {"node": node, "total": 0, "running": 0, "passed": 0, "failed": 0,
                                          "error": 0, "cancelled": 0})  # fmt: skip
            if case_status in row:
                row[case_status] += number
            row["total"] += number
        return list(nodes.values())


@extend_schema_field(
    serializers.ListField(
        child=serializers.CharField(max_length=CASE_NAME_MAX_LENGTH),
        min_length=1,
        max_length=settings.TESTHUB_MAX_CASES_PER_TASK,
    )
)
class CaseNamesField(serializers.Field):
    """A list of strings, checked for its shape only, in one pass (a task may carry 100,000 of them); the
    rules for the names themselves are execution.validators.case_names_check, which the services apply."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Expected a list of case names.")
        if len(data) > settings.TESTHUB_MAX_CASES_PER_TASK:
            raise serializers.ValidationError(
                f"At most {settings.TESTHUB_MAX_CASES_PER_TASK} cases per task; this list has {len(data)}."
            )
        for index, item in enumerate(data):
            if not isinstance(item, str):
                raise serializers.ValidationError(f"Case {index} is not a string: {item!r:.80}.")
        return data

    def to_representation(self, value):
        return value


class TaskSubmitSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, validators=[validate_one_line])
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    tool = serializers.PrimaryKeyRelatedField(queryset=TestTool.objects.all())
    priority = serializers.IntegerField(min_value=0, max_value=9, default=5)
    webhook_url = serializers.URLField(
        required=False,
        max_length=500,
        help_text="Also POST the report summary here when the task ends. Its host must be on the lab managers' "
        "allow-list (GET /api/webhook-hosts/), and resolve to public addresses unless that host allows others.",
    )
    case_timeout = serializers.IntegerField(
        min_value=1,
        max_value=settings.TESTHUB_MAX_CASE_TIMEOUT,
        required=False,
        help_text="Seconds one case may run; the tool's timeout when left out.",
    )
    cases = CaseNamesField(help_text="Case names, each at most 500 characters, no repeats.")


class RerunSerializer(serializers.Serializer):
    cases = serializers.ChoiceField(
        choices=["failed", "all"], default="failed", help_text="failed: the failed and errored cases; all: every case."
    )


class CaseSignatureSerializer(serializers.ModelSerializer):
    class Meta:
        model = FailureSignature
        fields = ["id", "title", "note", "bug_url"]
        read_only_fields = fields


class CaseSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True, allow_null=True, default=None)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    signature = CaseSignatureSerializer(read_only=True, allow_null=True, help_text="Its failure group's cause.")
    flaky = serializers.SerializerMethodField(help_text="Flaky on this product version and tool (execution.flaky).")
    muted = serializers.SerializerMethodField(help_text="Muted for this product and tool: left out of success rates.")

    class Meta:
        model = Case
        fields = [
            "id",
            "task",
            "name",
            "status",
            "node",
            "node_name",
            "attempts",
            "exit_code",
            "started_at",
            "finished_at",
            "duration_seconds",
            "failure",
            "signature",
            "flaky",
            "muted",
        ]
        read_only_fields = fields

    def get_flaky(self, case) -> bool:
        return self.context.get("marks", {}).get(case.pk, (False, False))[0]

    def get_muted(self, case) -> bool:
        return self.context.get("marks", {}).get(case.pk, (False, False))[1]


class CaseMarks:
    """For views of cases: the flaky and muted marks of the cases shown, read once per page."""

    def get_serializer(self, *args, **kwargs):
        if args and args[0] is not None:
            cases = list(args[0]) if kwargs.get("many") else [args[0]]
            marks = case_marks(cases, task=getattr(self, "task", None))
            kwargs["context"] = {**self.get_serializer_context(), "marks": marks}
        return super().get_serializer(*args, **kwargs)


class CaseFilter(django_filters.FilterSet):
    class Meta:
        model = Case
        fields = ["task", "status", "node", "signature"]


def _cases():
    return Case.objects.defer("log").select_related("node", "signature")


class TaskFilter(django_filters.FilterSet):
    mine = django_filters.BooleanFilter(method="filter_mine", help_text="Only the tasks you submitted.")

    class Meta:
        model = Task
        fields = ["status", "product", "tool", "created_by", "rerun_of", "template"]

    def filter_mine(self, queryset, name, value):
        return queryset.filter(created_by=self.request.user) if value else queryset


@functools.lru_cache(maxsize=10_000)
def _task_owner(task_id: int) -> int | None:
    """Who submitted the task (it never changes): asked by every poll of a task page."""
    return Task.objects.filter(pk=task_id).values_list("created_by_id", flat=True).first()


class TaskViewSet(RevisionCachedAnswers, LookupUnfiltered, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Tasks, newest first, a cursor page at a time; counts are kept on each task, never recounted."""

    answer_topics = (TASKS, CATALOG, USERS)
    lookup_value_regex = "[0-9]+"
    permission_classes = [SubmitPermission]
    serializer_class = TaskSerializer
    pagination_class = CursorPagination
    filterset_class = TaskFilter
    search_fields = ["name"]
    ordering_fields = ["id"]

    def get_queryset(self):
        return Task.objects.select_related("product", "tool", "created_by", "report").only(
            *(field.name for field in Task._meta.concrete_fields),
            *("product__name", "product__version", "tool__name", "tool__version", "created_by__username"),
            *("report__id", "report__file", "report__status", "report__success_rate"),
        )

    def get_serializer_class(self):
        return TaskDetailSerializer if self.action == "retrieve" else TaskSerializer

    def answer_audience(self, request) -> str:
        """One task reads the same to everyone who may read it, but for its webhook URL (its owner and lab managers
        see it): those people share one kept answer, and so do the rest. Lists stay per user (`mine`, webhooks)."""
        if self.action != "retrieve":
            return super().answer_audience(request)
        user = request.user
        sees_webhook = is_lab_manager(user) or _task_owner(int(self.kwargs["pk"])) == user.pk
        return f"task readers{' with its webhook' if sees_webhook else ''}"

    def cheap_count(self, queryset) -> int:
        return queryset.count()  # an indexed count of tasks: thousands, never millions

    @extend_schema(request=TaskSubmitSerializer, responses={201: TaskSerializer})
    def create(self, request):
        """Submit a task: its cases run on the nodes that have the product with the tool installed."""
        submit = TaskSubmitSerializer(data=request.data)
        submit.is_valid(raise_exception=True)
        data = submit.validated_data
        task = services.task_submit(
            user=request.user,
            name=data["name"],
            product=data["product"],
            tool=data["tool"],
            case_names=data["cases"],
            priority=data["priority"],
            case_timeout=data.get("case_timeout"),
            webhook_url=data.get("webhook_url", ""),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=task.pk)).data, status=status.HTTP_201_CREATED)

    def _task_for_change(self, pk) -> Task:
        task = get_object_or_404(Task, pk=pk)
        if task.created_by_id != self.request.user.pk and not is_lab_manager(self.request.user):
            raise PermissionDenied("Testers cancel and rerun their own tasks; ask a lab manager for others.")
        return task

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Queued cases never start, running ones are stopped; the report is still built and says cancelled."""
        task = services.task_cancel(task=self._task_for_change(pk))
        return Response(self.get_serializer(self.get_queryset().get(pk=task.pk)).data)

    @extend_schema(request=RerunSerializer, responses={201: TaskSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """A new task, linked to this one, of its failed and errored cases or of all of them."""
        choice = RerunSerializer(data=request.data)
        choice.is_valid(raise_exception=True)
        task = services.task_rerun(
            task=self._task_for_change(pk), user=request.user, which=choice.validated_data["cases"]
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=task.pk)).data, status=status.HTTP_201_CREATED)


class TaskCaseList(CaseMarks, RevisionCachedAnswers, generics.ListAPIView):
    """The task's cases in order, a cursor page at a time (as quick deep in a 100,000-case task as at its start);
    filter by status and node, search by name."""

    answer_topics = (TASKS, NODES)
    permission_classes = [SubmitPermission]
    serializer_class = CaseSerializer
    pagination_class = OldestFirstCursorPagination

    def answer_audience(self, request) -> str:
        return "testers and lab managers"  # a task's cases read the same to everyone let in

    filterset_class = CaseFilter
    search_fields = ["name"]
    ordering_fields = ["id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no task id
            return Case.objects.none()
        self.task = get_object_or_404(Task.objects.select_related("product"), pk=self.kwargs["pk"])
        return _cases().filter(task=self.task)

    def cheap_count(self, queryset) -> int | None:
        """From the task's kept counts, when only the status narrows the list; counted when a search does."""
        narrowed = {key for key in self.request.query_params if key not in ("cursor", "page_size", "ordering")}
        if not narrowed:
            return self.task.cases_total
        status = self.request.query_params.get("status")
        if narrowed == {"status"} and status in Case.Status.values:
            return getattr(self.task, f"cases_{status}")
        return queryset.count()  # narrowed by a search or a node: within one task's cases, on an index


class CaseViewSet(CaseMarks, RevisionCachedAnswers, LookupUnfiltered, viewsets.ReadOnlyModelViewSet):
    """Every case of the lab, newest first, a cursor page at a time (no count: there are millions)."""

    answer_topics = (TASKS, NODES)
    lookup_value_regex = "[0-9]+"
    permission_classes = [SubmitPermission]
    serializer_class = CaseSerializer
    pagination_class = CursorPagination
    queryset = _cases()
    filterset_class = CaseFilter
    search_fields = ["name"]
    ordering_fields = ["id"]

    @extend_schema(
        parameters=[
            OpenApiParameter("tail", int, description="Only the last this many bytes (the viewer asks for 65536)."),
            OpenApiParameter("download", bool, description="As an attachment, the whole log."),
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[PlainTextRenderer, JSONRenderer])
    def log(self, request, pk=None):
        """The case's output (stdout and stderr; the worker keeps its last 64 KiB). `X-Log-Size` says how long the
        whole log is, so a viewer asking for a `tail` knows what it left out."""
        case = get_object_or_404(Case.objects.only("log"), pk=pk)
        text = case.log.encode()
        tail = request.query_params.get("tail", "")
        if tail:
            if not tail.isdigit():
                raise ValidationError({"tail": ["Give the number of bytes to show from the end, e.g. 65536."]})
            text = text[-int(tail) :] if int(tail) else b""
            text = text.decode("utf-8", "ignore").encode()  # never a character cut in half
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["X-Log-Size"] = str(len(case.log.encode()))
        if request.query_params.get("download") in ("1", "true"):
            response["Content-Disposition"] = f'attachment; filename="testhub-case-{pk}.log"'
        return response


class TemplateSerializer(serializers.ModelSerializer):
    cases = CaseNamesField(help_text="Case names, each at most 500 characters, no repeats.")
    product_name = serializers.CharField(source="product.__str__", read_only=True)
    tool_name = serializers.CharField(source="tool.__str__", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = TaskTemplate
        fields = [
            "id",
            "name",
            "product",
            "product_name",
            "tool",
            "tool_name",
            "cases",
            "priority",
            "case_timeout",
            "cron",
            "last_run_error",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["last_run_error", "created_at", "updated_at"]


class TemplateRunSerializer(TaskSerializer):
    success_rate = serializers.DecimalField(
        source="report.success_rate", max_digits=5, decimal_places=2, read_only=True, allow_null=True, default=None
    )

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "success_rate"]
        read_only_fields = fields

    def to_representation(self, task) -> dict:
        report = getattr(task, "report", None)
        rate = report.success_rate if report else None
        shown = self.fields["success_rate"].to_representation(rate) if rate is not None else None
        return {**super().to_representation(task), "success_rate": shown}


class TemplateViewSet(RevisionCachedAnswers, LookupUnfiltered, viewsets.ModelViewSet):
    """Saved tasks: lab managers keep them and run them now or on a cron schedule; every run is a task."""

    answer_topics = (TASKS, CATALOG, USERS)
    lookup_value_regex = "[0-9]+"
    serializer_class = TemplateSerializer
    queryset = TaskTemplate.objects.select_related("product", "tool", "created_by")
    filterset_fields = ["product", "tool"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def perform_create(self, serializer):
        template = TaskTemplate(**serializer.validated_data)
        serializer.instance = services.template_save(template=template, user=self.request.user)

    def perform_update(self, serializer):
        for field, value in serializer.validated_data.items():
            setattr(serializer.instance, field, value)
        services.template_save(template=serializer.instance)

    def perform_destroy(self, instance):
        services.template_delete(template=instance)

    @extend_schema(request=None, responses={201: TaskSerializer})
    @action(detail=True, methods=["post"], permission_classes=[SubmitPermission])
    def run(self, request, pk=None):
        """Run the template now: a new task, with its own report. Testers may run what lab managers saved; only
        lab managers change templates."""
        task = services.template_run(template=self.get_object(), user=request.user)
        tasks = Task.objects.select_related("product", "tool", "created_by", "report")
        data = TaskSerializer(tasks.get(pk=task.pk), context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=TemplateRunSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def runs(self, request, pk=None):
        """The template's runs, newest first, each with its pass rate."""
        template = self.get_object()
        runs = template.runs.select_related("product", "tool", "created_by", "report").order_by("-created_at", "-id")
        page = self.paginate_queryset(runs)
        runs = TemplateRunSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(runs.data)


class WebhookHostSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookHost
        fields = ["id", "host", "allow_private", "note", "created_at"]
        read_only_fields = ["created_at"]

    def validate_host(self, value: str) -> str:
        host = value.strip().rstrip(".").lower()
        if not host.removeprefix("*.") or any(char in host for char in "/@?# "):
            raise serializers.ValidationError("Give a host name, '*.example.com', or an IP address, not a URL.")
        return host


class WebhookHostViewSet(LookupUnfiltered, viewsets.ModelViewSet):
    """The hosts task webhooks may be sent to: lab managers keep the list, everyone reads it."""

    lookup_value_regex = "[0-9]+"
    queryset = WebhookHost.objects.all()
    serializer_class = WebhookHostSerializer
    search_fields = ["host", "note"]
    ordering_fields = ["host", "created_at"]


class CapabilityOnlineNodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CapabilityNodeSerializer(CapabilityOnlineNodeSerializer):
    status = serializers.ChoiceField(choices=Node.Status.choices)


class CapabilityView(APIView):
    """Which nodes can run a product with a tool, and which of them are online now (the submit form shows it)."""

    permission_classes = [SubmitPermission]

    @extend_schema(
        parameters=[OpenApiParameter("product", int, required=True), OpenApiParameter("tool", int, required=True)],
        responses=inline_serializer(
            "Capability",
            {
                "queue": serializers.CharField(),
                "online_nodes": CapabilityOnlineNodeSerializer(many=True),
                "nodes": CapabilityNodeSerializer(many=True),
            },
        ),
    )
    def get(self, request):
        product, tool = product_and_tool(request)
        nodes = Node.objects.capable_of(product=product, tool=tool).order_by("name")
        online = {node.pk for node in nodes.online()}
        return Response(
            {
                "queue": capability_queue(product=product, tool=tool),
                "online_nodes": [{"id": node.pk, "name": node.name} for node in nodes if node.pk in online],
                "nodes": [{"id": node.pk, "name": node.name, "status": node.status} for node in nodes],
            }
        )


class CaseNamesView(APIView):
    """Case names from the latest runs of a product with a tool, to offer when a tester writes a new task."""

    permission_classes = [SubmitPermission]
    RECENT_TASKS = 20
    LIMIT = 200

    @extend_schema(
        parameters=[
            OpenApiParameter("product", int, required=True),
            OpenApiParameter("tool", int, required=True),
            OpenApiParameter("search", str, description="Only names containing this text."),
        ],
        responses=inline_serializer("CaseNames", {"results": serializers.ListField(child=serializers.CharField())}),
    )
    def get(self, request):
        product, tool = product_and_tool(request)
        recent = Task.objects.filter(product=product, tool=tool).order_by("-id").values("pk")[: self.RECENT_TASKS]
        cases = Case.objects.filter(task__in=recent)
        if search := request.query_params.get("search", "").strip():
            cases = cases.filter(name__icontains=search)
        names = cases.order_by("name").values_list("name", flat=True).distinct()[: self.LIMIT]
        return Response({"results": list(names)})


def product_and_tool(request) -> tuple[Product, TestTool]:
    """The product and tool named by id in the query string, or a 400 saying which is missing or unknown."""
    found = {}
    for field, model in (("product", Product), ("tool", TestTool)):
        value = request.query_params.get(field, "")
        if not value.isdigit():
            raise ValidationError({field: [f"Give the {field}'s id, e.g. ?{field}=1."]})
        found[field] = model.objects.filter(pk=int(value)).first()
        if found[field] is None:
            raise ValidationError({field: [f"There is no {field} with id {value}."]})
    return found["product"], found["tool"]
