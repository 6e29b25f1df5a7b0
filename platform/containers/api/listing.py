"""Pages of the container list with their total in one query (issue 15: the list's cost)."""

from django.db.models import Count, Window

from api.pagination import Pagination


class _Total:
    """What Django's Paginator needs of a list whose total is already known."""

    def __init__(self, total: int):
        self.total = total

    def count(self) -> int:
        return self.total

    def __getitem__(self, _):
        return []  # the page's rows were read with the total


class OneQueryPagination(Pagination):
    """Page-number pages as api.pagination.Pagination answers them, but a page of rows and
    the number of rows come from one query (a window count over the filtered rows) instead
    of a COUNT and a SELECT. Anything but a page with rows (no rows, a page past the end,
    `?page=last`, a page that is not a number) is left to the parent's two queries, so its
    answers (an empty first page, 404 "Invalid page.") stay the same.

    The queryset is a values_list(); each row gets the total as a last column, taken off here.
    """

    def paginate_queryset(self, queryset, request, view=None):
        page_size = self.get_page_size(request)
        number = request.query_params.get(self.page_query_param) or "1"
        if not page_size or not number.isascii() or not number.isdigit() or int(number) < 1:
            return super().paginate_queryset(queryset, request, view)
        number = int(number)
        start = (number - 1) * page_size
        rows = list(queryset.annotate(_total=Window(Count("*")))[start : start + page_size])
        if not rows:
            return super().paginate_queryset(queryset, request, view)
        paginator = self.django_paginator_class(_Total(rows[0][-1]), page_size)
        self.page = paginator.page(number)
        self.page.object_list = [row[:-1] for row in rows]
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        self.request = request
        return list(self.page.object_list)
