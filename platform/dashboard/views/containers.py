"""The container list: server-side search, filters, sorting and pagination, live rows, bulk actions."""

import functools
import re
from types import SimpleNamespace

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from accounts.models import Team
from config.errors import InvalidRequest, PlatformError
from config.ids import as_id, is_id
from containers import services
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dashboard.decorators import back_url, gated
from dashboard.permissions import may, visible
from dashboard.templatetags.berth import ports_text
from hosts.models import Host

PAGE_SIZE = 50
# The rows-per-page choices the list offers (Portainer's 10/25/50/100); others read as the default.
PAGE_SIZES = (10, 25, 50, 100)
# Live states; `removed` rows (kept for the audit trail) show only when asked for, like the API.
STATES = [choice for choice, _ in Container.Observed.choices if choice != "removed"]
# Bulk buttons; a button shows only when the gate allows its action on some container.
ROW_ACTIONS = ("start", "stop", "restart", "kill", "pause", "unpause", "delete")
# ?sort= keys (a leading "-" reverses); names sort naturally (web-2 before web-10) by sort_name.
SORTS = {
    "state": "observed_state",
    "image": "image",
    "team": "team__name",
    "host": "host__name",
    "created": "created_at",
}
NATURAL_CHUNK = re.compile(r"(\d+)")


@functools.lru_cache(maxsize=8192)  # the stacks page sorts every stack and member name
def natural_key(name: str) -> tuple:
    """'web-10' -> ('web-', 10, ''): numbers inside names compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in NATURAL_CHUNK.split(name)
    )


def parse_label(text: str) -> tuple[str, str | None] | None:
    """'key=value' or 'key' -> (key, value or None); None for what is not a label filter."""
    key, sep, value = text.strip().partition("=")
    key = key.strip()
    # "__" would turn the key into a Django lookup path: refuse it.
    if not key or "__" in key or len(key) > 128:
        return None
    return key, (value.strip() if sep else None)


def filtered(request):
    """The containers the user may view, narrowed by the query string; returns (qs, filters)."""
    return filtered_by(request.GET, request.user)


def filtered_by(params, user):
    """The containers `user` may view narrowed by `params` (a QueryDict); (qs, filters)."""
    filters = {
        k: params.get(k, "").strip()
        for k in ("q", "state", "team", "host", "image", "label", "sort")
    }
    base = Container.objects.all()
    if filters["state"] != "removed":
        base = base.filter(NOT_REMOVED)
    qs = visible(base, user, "container.view")
    if filters["state"] == "removed":
        qs = qs.filter(observed_state="removed")
    if filters["q"]:
        qs = qs.filter(Q(name__icontains=filters["q"]) | Q(image__icontains=filters["q"]))
    if filters["state"] in STATES:
        qs = qs.filter(observed_state=filters["state"])
    if is_id(filters["team"]):
        qs = qs.filter(team_id=as_id(filters["team"]))
    if is_id(filters["host"]):
        qs = qs.filter(host_id=as_id(filters["host"]))
    if filters["image"]:
        qs = qs.filter(image=filters["image"])
    label = parse_label(filters["label"]) if filters["label"] else None
    if label:
        key, value = label
        qs = (
            qs.filter(labels__has_key=key)
            if value is None
            else qs.filter(**{f"labels__{key}": value})
        )
    return qs, filters


@gated("container.view")
def container_list(request):
    """All containers the user may view, 50 a page (10, 25 or 100 on request); htmx polls the
    table body for live states."""
    qs, filters = filtered(request)
    page = _sorted_page(request, qs, filters["sort"])
    user = request.user
    allowed = [a for a in ROW_ACTIONS if may(user, f"container.{a}")]
    query = _query_without_page(request)
    rows_html = _rows_html(tuple(page.object_list), bool(allowed), query, page.number)
    if request.headers.get("HX-Request") and request.GET.get("partial") == "rows":
        return HttpResponse(rows_html)
    filter_query = _query_without(request, "page", "partial", "sort")
    # The filter choices are the teams and hosts of containers the user may view (subqueries).
    mine = visible(Container.objects.all(), user, "container.view")
    # EXISTS per team and host (an index seek each), not every container's team read.
    teams = tuple(
        Team.objects.filter(Exists(mine.filter(team_id=OuterRef("pk"))))
        .values_list("id", "name", named=True)
        .order_by("name")
    )
    hosts = tuple(
        Host.objects.filter(Exists(mine.filter(host_id=OuterRef("pk"))))
        .values_list("id", "name", named=True)
        .order_by("name")
    )
    context = {
        "page": page,
        "rows_html": rows_html,
        "filters_html": _filters_html(tuple(filters.items()), teams, hosts),
        "thead_html": _thead_html(bool(allowed), filters["sort"] or "name", filter_query),
        "bulk_html": _bulk_html(tuple(allowed), page.paginator.count, len(page.object_list)),
        "filter_query": filter_query,
        "can_create": may(user, "container.create"),
        "query": query,
        "size_query": _query_without(request, "page", "partial", "per_page"),
        "page_sizes": PAGE_SIZES,
        "page_size": page.paginator.per_page,
    }
    return render(request, "dashboard/containers/list.html", context)


# The page's other fragments, like the rows, are rendered once per content: each function's
# arguments are everything its fragment shows (the user's own choices and what the gate let
# them see among them), so a kept text is another user's only when it is exactly theirs too.
COLUMNS = (
    ("name", "Name"),
    ("state", "State"),
    ("image", "Image"),
    ("team", "Team"),
    ("host", "Host"),
    ("created", "Created"),
)


def _fragment(template: str, context: dict) -> str:
    html = render_to_string(f"dashboard/containers/{template}", context).rstrip("\n")
    return mark_safe(html)  # noqa: S308 (rendered by the template engine, escaped there)


@functools.lru_cache(maxsize=128)
def _filters_html(filters: tuple, teams: tuple, hosts: tuple) -> str:
    """The filter form: the asked filters and the teams and hosts the user may pick from."""
    context = {"filters": dict(filters), "states": [*STATES, "removed"]}
    return _fragment("_filters.html", {**context, "teams": teams, "hosts": hosts})


@functools.lru_cache(maxsize=128)
def _thead_html(selectable: bool, sort: str, filter_query: str) -> str:
    """The table head: sort links keeping the filters, the checkbox column when selectable."""
    context = {"allowed": selectable, "columns": COLUMNS, "sort": sort}
    return _fragment("_thead.html", {**context, "filter_query": filter_query})


@functools.lru_cache(maxsize=128)
def _bulk_html(allowed: tuple, count: int, on_page: int) -> str:
    """The bulk buttons the gate allowed, and 'select all N matching' when N is more."""
    return _fragment("_bulk_actions.html", {"allowed": allowed, "count": count, "on_page": on_page})


# What a row shows, read as tuples (no model instance per row); the ports from the spec only.
ROW_COLUMNS = (
    "id",
    "name",
    "image",
    "observed_state",
    "desired_state",
    "created_at",
    "team__name",
    "host__name",
    "spec__network__ports",
)


def _rows_html(rows: tuple, selectable: bool, query: str, number: int) -> str:
    """The table body of a page of rows (tuples of ROW_COLUMNS), rendered once per content:
    50 browsers (or one browser's 5-second polls) asking for an unchanged page get the same
    text without rendering its 50 rows again."""
    return _render_rows(
        tuple((*row[:-1], _ports(row[-1])) for row in rows),
        selectable,
        query,
        number,
        timezone.get_current_timezone_name(),  # the dates are written in it
        translation.get_language(),
    )


def _ports(ports) -> str:
    return ports_text(SimpleNamespace(spec={"network": {"ports": ports}})) if ports else ""


@functools.lru_cache(maxsize=128)
def _render_rows(rows: tuple, selectable: bool, query: str, number: int, tz: str, lang: str):
    """Keyed by everything the fragment shows (the rows' values, the checkbox column, the poll
    URL, time zone and language), so a cached text is never stale, only reused."""
    names = ("id", "name", "image", "observed_state", "desired_state", "created_at",
             "team_name", "host_name", "ports")  # fmt: skip
    context = {
        "rows": [dict(zip(names, row, strict=True)) for row in rows],
        "allowed": selectable,
        "query": query,
        "page_number": number,
    }
    return mark_safe(render_to_string("dashboard/containers/_rows.html", context))  # noqa: S308 (rendered by the template engine, escaped there)


def _sorted_page(request, qs, sort: str):
    """One page of `qs` in the asked order, as tuples of ROW_COLUMNS; by name (the default)
    in natural order, which the rows' indexed sort_name column gives (no names read but the
    page's)."""
    key = sort.lstrip("-")
    reverse = sort.startswith("-")
    if key in SORTS:  # ties in natural name order
        order = [f"-{SORTS[key]}" if reverse else SORTS[key], "sort_name", "id"]
    else:
        order = ["-sort_name", "-id"] if reverse else ["sort_name", "id"]
    paginator = Paginator(qs.order_by(*order).values_list(*ROW_COLUMNS), page_size(request))
    # The total from the filtered rows alone: counting the page's query would join every
    # row's team and host for names only the page shows.
    paginator.count = qs.order_by().count()
    return paginator.get_page(request.GET.get("page"))


def page_size(request) -> int:
    """The rows a page holds: `?per_page=` when it is one of PAGE_SIZES, else PAGE_SIZE."""
    asked = request.GET.get("per_page", "")
    return int(asked) if asked in {str(n) for n in PAGE_SIZES} else PAGE_SIZE


def _query_without(request, *drop) -> str:
    query = request.GET.copy()
    for key in drop:
        query.pop(key, None)
    return query.urlencode()


def _query_without_page(request) -> str:
    return _query_without(request, "page", "partial")


BULK_VERBS = ("start", "stop", "restart", "kill", "pause", "unpause", "remove")
MAX_BULK = 500


@require_POST
@gated("container.view")
def bulk_action(request):
    """A lifecycle verb on the selected containers (or every one the list's filters match),
    each through the service and the gate."""
    verb = request.POST.get("action", "")
    if verb not in BULK_VERBS:
        raise InvalidRequest(f"unknown bulk action {verb!r}")
    if request.POST.get("all") == "1":
        # "Select all N matching": the list's own filters, applied again here (every page).
        matching, _ = filtered_by(QueryDict(request.POST.get("query", "")), request.user)
        ids = list(matching.order_by("id").values_list("id", flat=True)[:MAX_BULK])
    else:
        ids = [as_id(i) for i in request.POST.getlist("ids") if is_id(i)][:MAX_BULK]
    if not ids:
        messages.error(request, "select at least one container")
        return redirect(back_url(request, reverse("dashboard:containers")))
    chosen = visible(
        Container.objects.select_related("host", "team"), request.user, "container.view"
    ).filter(id__in=ids)
    done, refused = 0, []
    params = {"force": True} if verb == "remove" else {}
    summary = {"method": "POST", "path": request.path, "via": "dashboard bulk", "ids": ids}
    for container in chosen:
        try:
            services.do_container_verb(
                container, verb, acting_user=request.user, params=params, summary=summary
            )
            done += 1
        except PlatformError as err:
            # Each refusal is audited by the gate; one failure does not stop the others.
            refused.append(f"{container.name}: {err.message}")
    missing = len(set(ids)) - done - len(refused)
    if done:
        messages.success(request, f"{verb} queued for {done} container(s)")
    for line in refused[:10]:
        messages.error(request, line)
    if missing > 0:
        messages.error(request, f"{missing} selected container(s) not found")
    return redirect(back_url(request, reverse("dashboard:containers")))
