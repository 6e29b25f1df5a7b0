"""Rows per host of any queryset with a `host` foreign key, in one grouped query."""

from django.db.models import Count


def per_host(queryset) -> dict[int, int]:
    """{host id: number of rows} of `queryset` (hosts without rows are absent)."""
    return dict(
        queryset.order_by().values("host_id").annotate(n=Count("pk")).values_list("host_id", "n")
    )
