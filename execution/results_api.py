"""The API of what results mean: case history, run-to-run and version-to-version comparison, flaky cases, muted
cases and failure groups with their notes."""

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import LabPermission, SubmitPermission
from api.answers import RevisionCachedAnswers
from api.pagination import CursorPagination, Pagination
from api.views import LookupUnfiltered
from catalog.models import Product
from execution import comparison, services
from execution.api import product_and_tool
from execution.models import Case, CaseTrack, FailureSignature, MutedCase, Task
from execution.results import case_history, failure_groups
from messaging.revisions import CATALOG, NODES, TASKS

COMPARE_PAGE = 100


class SignatureSerializer(serializers.ModelSerializer):
    noted_by = serializers.CharField(source="noted_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = FailureSignature
        fields = ["id", "title", "note", "bug_url", "noted_by", "noted_at", "first_seen_at"]
        read_only_fields = ["id", "title", "noted_by", "noted_at", "first_seen_at"]

    def validate_bug_url(self, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValidationError("Give an http:// or https:// link to the bug.")
        return value


class SignatureViewSet(LookupUnfiltered, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Failure signatures; a tester may write a note or a bug link on one (PATCH), shown on every failure with it."""

    permission_classes = [SubmitPermission]
    serializer_class = SignatureSerializer
    queryset = FailureSignature.objects.select_related("noted_by")
    pagination_class = CursorPagination
    http_method_names = ["get", "patch", "head", "options"]

    def perform_update(self, serializer):
        data = serializer.validated_data
        services.failure_signature_note(
            signature=serializer.instance,
            user=self.request.user,
            note=data.get("note", serializer.instance.note),
            bug_url=data.get("bug_url", serializer.instance.bug_url),
        )


class HistoryRunSerializer(serializers.ModelSerializer):
    """One run of a case, as its history lists it."""

    task_name = serializers.CharField(source="task.name", read_only=True)
    product_version = serializers.CharField(source="task.product.version", read_only=True)
    rerun = serializers.SerializerMethodField()
    node_name = serializers.CharField(source="node.name", read_only=True, allow_null=True, default=None)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Case
        fields = [
            *("id", "task", "task_name", "product_version", "rerun", "status", "node_name", "attempts"),
            *("exit_code", "started_at", "finished_at", "duration_seconds", "failure"),
        ]
        read_only_fields = fields

    def get_rerun(self, case) -> bool:
        return case.task.rerun_of_id is not None


class NewestTaskFirstPagination(CursorPagination):
    ordering = "-task_id"


class CaseHistoryView(RevisionCachedAnswers, generics.ListAPIView):
    """A case's results across runs of a product (any version) with a tool, newest first, a cursor page at a
    time: the version, task, node, duration, attempts and the first line of each failure."""

    answer_topics = (TASKS, NODES)
    permission_classes = [SubmitPermission]
    serializer_class = HistoryRunSerializer
    pagination_class = NewestTaskFirstPagination

    def answer_audience(self, request) -> str:
        return "testers and lab managers"

    @extend_schema(
        parameters=[
            OpenApiParameter("product", int, required=True, description="Any version of the product: its id."),
            OpenApiParameter("tool", int, required=True),
            OpenApiParameter("name", str, required=True, description="The case name."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Case.objects.none()
        product, tool = product_and_tool(self.request)
        name = self.request.query_params.get("name", "")
        if not name:
            raise ValidationError({"name": ["Give the case name, e.g. ?name=tests/test_calc.py::test_add."]})
        return case_history(product_name=product.name, tool_id=tool.pk, name=name)


class ChangedSideSerializer(serializers.Serializer):
    case = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=Case.Status.choices, allow_null=True)
    seconds = serializers.FloatField(allow_null=True)


class ChangedCaseSerializer(serializers.Serializer):
    name = serializers.CharField()
    change = serializers.ChoiceField(choices=comparison.CHANGES)
    now = ChangedSideSerializer()
    before = ChangedSideSerializer()


class ComparedTaskSerializer(serializers.ModelSerializer):
    product_version = serializers.CharField(source="product.version")

    class Meta:
        model = Task
        fields = ["id", "name", "product", "product_version", "status", "created_at", "finished_at"]
        read_only_fields = fields


class ChangeCountsSerializer(serializers.Serializer):
    """Cases per change (comparison.CHANGES)."""

    new_failures = serializers.IntegerField()
    fixed = serializers.IntegerField()
    still_failing = serializers.IntegerField()
    new_cases = serializers.IntegerField()
    removed_cases = serializers.IntegerField()
    slower = serializers.IntegerField()
    faster = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    task = ComparedTaskSerializer()
    compared_with = ComparedTaskSerializer(allow_null=True)
    counts = ChangeCountsSerializer(help_text="Cases per change (all 0 when there is nothing to compare with).")
    change = serializers.ChoiceField(choices=comparison.CHANGES, allow_null=True, help_text="The change listed.")
    results = ChangedCaseSerializer(many=True)
    next_after = serializers.CharField(
        allow_null=True, help_text="More of this change follow: ask again with ?after=<this>."
    )


def _comparison(request, *, task: Task, base: Task | None) -> dict:
    """The counts of each change, and a page of one change's cases (?change=, ?after=, in name order)."""
    if base is None:
        counts = dict.fromkeys(comparison.CHANGES, 0)
        return {
            "task": task,
            "compared_with": None,
            "counts": counts,
            "change": None,
            "results": [],
            "next_after": None,
        }
    counts = comparison.change_counts(task_id=task.pk, before_id=base.pk)
    change = request.query_params.get("change") or next((name for name in comparison.CHANGES if counts[name]), None)
    if change is not None and change not in comparison.CHANGES:
        raise ValidationError({"change": [f"Choose one of: {', '.join(comparison.CHANGES)}."]})
    rows = []
    if change is not None:
        after = request.query_params.get("after", "")
        rows = list(
            comparison.changed_cases(
                task_id=task.pk, before_id=base.pk, change=change, after=after, limit=COMPARE_PAGE + 1
            )
        )
    more = len(rows) > COMPARE_PAGE
    rows = rows[:COMPARE_PAGE]
    return {
        "task": task,
        "compared_with": base,
        "counts": counts,
        "change": change,
        "results": [
            {
                "name": row.name,
                "change": row.change,
                "now": {"case": row.case, "status": row.status, "seconds": row.seconds},
                "before": {"case": row.before_case, "status": row.before_status, "seconds": row.before_seconds},
            }
            for row in rows
        ],
        "next_after": rows[-1].name if more else None,
    }


_COMPARE_PARAMETERS = [
    OpenApiParameter(
        "change", str, enum=list(comparison.CHANGES), description="Which change to list (default: the first with any)."
    ),
    OpenApiParameter("after", str, description="The page after this case name (a previous answer's next_after)."),
]  # fmt: skip


class CachedGet(RevisionCachedAnswers):
    answer_topics = (TASKS, CATALOG)

    def answer_audience(self, request) -> str:
        return "testers and lab managers"

    def get(self, request, *args, **kwargs):
        return self._answer(self.answer, request, *args, **kwargs)


class TaskCompareView(CachedGet, APIView):
    """What changed since another run: new failures, fixed, still failing, new cases, cases no longer run, and
    cases that took far longer or shorter. By default against the latest earlier finished full run of the same
    product name and tool."""

    permission_classes = [SubmitPermission]

    @extend_schema(
        parameters=[
            OpenApiParameter("with", int, description="The task to compare with (default: the previous full run)."),
            *_COMPARE_PARAMETERS,
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def answer(self, request, pk: int):
        task = get_object_or_404(Task.objects.select_related("product", "tool"), pk=pk)
        other = request.query_params.get("with", "")
        if other:
            if not other.isdigit():
                raise ValidationError({"with": ["Give the id of the task to compare with, e.g. ?with=12."]})
            base = Task.objects.select_related("product").filter(pk=int(other)).first()
            if base is None:
                raise ValidationError({"with": [f"There is no task with id {other}."]})
        else:
            base = comparison.comparison_base(task=task)
        return Response(ComparisonSerializer(_comparison(request, task=task, base=base)).data)


class VersionCompareView(CachedGet, APIView):
    """Two versions of a product compared by their latest finished full runs with a tool."""

    permission_classes = [SubmitPermission]

    @extend_schema(
        parameters=[
            OpenApiParameter("product", int, required=True, description="Version B: the product's id."),
            OpenApiParameter("with", int, required=True, description="Version A: another version of it, by id."),
            OpenApiParameter("tool", int, required=True),
            *_COMPARE_PARAMETERS,
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def answer(self, request):
        product, tool = product_and_tool(request)
        other = request.query_params.get("with", "")
        version_a = Product.objects.filter(pk=int(other)).first() if other.isdigit() else None
        if version_a is None or version_a.name != product.name:
            raise ValidationError({"with": [f"Give the id of another version of {product.name}, e.g. ?with=3."]})
        runs = {}
        for version in (product, version_a):
            runs[version] = comparison.latest_full_run(product=version, tool=tool)
            if runs[version] is None:
                raise ValidationError(
                    {"product": [f"{version} has no finished full run with {tool} yet: there is nothing to compare."]}
                )
        return Response(ComparisonSerializer(_comparison(request, task=runs[product], base=runs[version_a])).data)


class FailureGroupSerializer(serializers.Serializer):
    signature = SignatureSerializer()
    cases = serializers.IntegerField()
    case_names = serializers.ListField(child=serializers.CharField(), help_text="The first few, in case order.")
    earlier_runs = serializers.IntegerField(help_text="Earlier tasks in which the same failure was seen.")
    first_task = serializers.IntegerField(allow_null=True)
    last_task = serializers.IntegerField(allow_null=True)


class FailureGroupsSerializer(serializers.Serializer):
    groups = serializers.IntegerField(help_text="How many groups in all (the biggest are listed).")
    results = FailureGroupSerializer(many=True)


class FailureGroupsView(CachedGet, APIView):
    """The task's failed and errored cases grouped by the cause their logs show, biggest group first; list a
    group's cases with /api/tasks/{id}/cases/?signature=<id>."""

    permission_classes = [SubmitPermission]

    @extend_schema(responses=FailureGroupsSerializer)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def answer(self, request, pk: int):
        task = get_object_or_404(Task, pk=pk)
        groups, count = failure_groups(task=task)
        return Response(FailureGroupsSerializer({"groups": count, "results": groups}).data)


class MutedCaseSerializer(serializers.ModelSerializer):
    muted_by = serializers.CharField(source="muted_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = MutedCase
        fields = ["id", "product_name", "tool", "name", "note", "muted_by", "muted_at"]
        read_only_fields = ["id", "muted_by", "muted_at"]
        validators = []  # a case muted twice is a 409 from the service, which says so


class FlakyCaseSerializer(serializers.ModelSerializer):
    recent = serializers.SerializerMethodField(help_text="The outcomes in the window, oldest first (P, R, F, E).")
    muted = serializers.SerializerMethodField(help_text="Its mute for the product and tool, if a lab manager muted it.")

    class Meta:
        model = CaseTrack
        fields = ["name", "runs", "flips", "flip_rate", "recent", "muted"]
        read_only_fields = fields

    def get_recent(self, track) -> str:
        return track.outcomes[-track.runs :]

    @extend_schema_field(MutedCaseSerializer(allow_null=True))
    def get_muted(self, track) -> dict | None:
        muted = self.context.get("mutes", {}).get(track.name)
        return MutedCaseSerializer(muted).data if muted else None


class FlakyCaseList(RevisionCachedAnswers, generics.ListAPIView):
    """The flaky cases of a product version with a tool, most often flipping first."""

    answer_topics = (TASKS,)
    permission_classes = [SubmitPermission]
    serializer_class = FlakyCaseSerializer
    pagination_class = Pagination

    def answer_audience(self, request) -> str:
        return "testers and lab managers"

    @extend_schema(
        parameters=[OpenApiParameter("product", int, required=True), OpenApiParameter("tool", int, required=True)]
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CaseTrack.objects.none()
        self.product, self.tool = product_and_tool(self.request)
        return CaseTrack.objects.filter(product=self.product, tool=self.tool, flaky=True).order_by("-flip_rate", "name")

    def get_serializer(self, *args, **kwargs):
        """With each page, its cases' mutes: one query."""
        if args and kwargs.get("many"):
            names = [track.name for track in args[0]]
            mutes = MutedCase.objects.select_related("muted_by").filter(
                product_name=self.product.name, tool=self.tool, name__in=names
            )
            kwargs["context"] = {**self.get_serializer_context(), "mutes": {muted.name: muted for muted in mutes}}
        return super().get_serializer(*args, **kwargs)


class MutedCaseFilter(django_filters.FilterSet):
    class Meta:
        model = MutedCase
        fields = ["product_name", "tool", "name"]


class MutedCaseViewSet(
    LookupUnfiltered, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Known flaky cases muted by lab managers: still run and recorded, left out of success rates."""

    permission_classes = [LabPermission]
    serializer_class = MutedCaseSerializer
    queryset = MutedCase.objects.select_related("muted_by")
    pagination_class = Pagination
    filterset_class = MutedCaseFilter

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        muted = services.case_mute(
            user=request.user, product_name=data["product_name"], tool=data["tool"], name=data["name"],
            note=data.get("note", ""),
        )  # fmt: skip
        return Response(self.get_serializer(muted).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.case_unmute(user=self.request.user, muted=instance)
