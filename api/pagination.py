"""Pages of lists. Short lists (products, nodes, reports) are numbered; long ones (tasks, a task's cases, all
cases) go by cursor, so page 2,000 costs what page 1 does, with a count only where it is cheap."""

from rest_framework import pagination
from rest_framework.response import Response


class Pagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class CursorPagination(pagination.CursorPagination):
    """Keyset pages in id order (`?ordering=id` or `-id`), `page_size` up to 200. `count` is given when the view
    knows it cheaply (`view.cheap_count(queryset)`: kept counts, or a small table), else null."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        counter = getattr(view, "cheap_count", None)
        self.count = counter(queryset) if counter else None
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        return Response(
            {"count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema):
        shape = super().get_paginated_response_schema(schema)
        shape["properties"]["count"] = {"type": "integer", "nullable": True, "example": 123}
        shape["required"] = ["count", "next", "previous", "results"]
        return shape


class OldestFirstCursorPagination(CursorPagination):
    ordering = "id"
