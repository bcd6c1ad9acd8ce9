"""Failure signatures for cases as they end: the database side of execution.signatures."""

from collections.abc import Iterable

from execution.models import Case, FailureSignature, Task
from execution.signatures import failure_signature


def failures_sign(cases: Iterable[Case]) -> None:
    """Each case that ended failed or errored gets its failure's first line and its signature, the group it
    belongs to (execution.signatures), made here the first time it is seen for the product and tool."""
    failing = [case for case in cases if case.status in (Case.Status.FAILED, Case.Status.ERROR)]
    if not failing:
        return
    scopes = {
        pk: (product_name, tool_id)
        for pk, product_name, tool_id in Task.objects.filter(
            pk__in={case.task_id for case in failing if case.task_id}
        ).values_list("pk", "product__name", "tool_id")
    }
    signed = [(case, scopes[case.task_id], failure_signature(case.log)) for case in failing]
    titles = {(*scope, signature.digest): signature.title for _, scope, signature in signed}
    # In key order: two recorders making the same new signatures at once wait for each other, never deadlock.
    FailureSignature.objects.bulk_create(
        [
            FailureSignature(product_name=product_name, tool_id=tool_id, digest=digest, title=title)
            for (product_name, tool_id, digest), title in sorted(titles.items())
        ],
        ignore_conflicts=True,
    )
    known = FailureSignature.objects.filter(digest__in={digest for _, _, digest in titles}).values_list(
        "product_name", "tool_id", "digest", "pk"
    )
    ids = {(product_name, tool_id, digest): pk for product_name, tool_id, digest, pk in known}
    for case, scope, signature in signed:
        case.failure = signature.failure
        case.signature_id = ids.get((*scope, signature.digest))
