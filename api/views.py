"""What every API view of TestHub shares."""


class LookupUnfiltered:
    """One object is found by its id alone: the list's filters, search and ordering (and their cost) apply to
    lists only."""

    def filter_queryset(self, queryset):
        if getattr(self, "action", None) in ("retrieve", "update", "partial_update", "destroy"):
            return queryset
        return super().filter_queryset(queryset)
