"""GET /containers/json: `docker ps` from one query of the summary columns, through the gate."""

import json
from types import SimpleNamespace

from django.db.models import BigIntegerField, Func, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import JsonResponse

from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dockerapi import render
from dockerapi.refs import docker_id
from rbac import gate

_LIST_FILTERS = {"label", "name", "status", "id"}


# The columns render.summary and _matches read (one query for the whole list). The JSON ones
# come as text (only the four keys of the spec a summary shows, extracted by the database)
# and each distinct text is parsed once per list: most rows share their command, network,
# mounts and labels, and parsing every row's whole spec was a third of a 500-row `docker ps`.
# The creation time comes as Unix seconds (what the summary shows) rather than as a datetime.
_SUMMARY_FIELDS = (
    "id", "name", "image", "runtime_id", "observed_state", "exit_code",
    "health__status", "health__failing_streak",
)  # fmt: skip
_SPEC_KEYS = ("command", "entrypoint", "network", "mounts")


class _UnixSeconds(Func):
    """A datetime column as whole seconds since the epoch (SQLite and PostgreSQL)."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # '%%%%s': the template's formatting makes it %%s, which the backend's parameter
        # substitution then turns into strftime's own %s.
        template = "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = "CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)"
        return self.as_sql(compiler, connection, template=template, **extra)


# In this order after _SUMMARY_FIELDS (values_list takes the expressions by position).
_SUMMARY_TEXT = {
    **{f"spec_{key}": KT(f"spec__{key}") for key in _SPEC_KEYS},
    "labels_text": Cast("labels", TextField()),
    "network_info_text": Cast("network_info", TextField()),
    "created": _UnixSeconds("created_at"),
}


def _summary_row(row: tuple, parse) -> SimpleNamespace:
    """A list row (_SUMMARY_FIELDS, then _SUMMARY_TEXT) as the attributes render.summary reads."""
    pk, name, image, runtime_id, observed, exit_code, health, streak, *texts, created = row
    command, entrypoint, network, mounts, labels, network_info = map(parse, texts)
    return SimpleNamespace(
        pk=pk, id=pk, name=name, image=image, runtime_id=runtime_id, observed_state=observed,
        exit_code=exit_code, created=created, labels=labels, network_info=network_info,
        health=None if health is None else SimpleNamespace(status=health, failing_streak=streak),
        spec={"command": command, "entrypoint": entrypoint, "network": network, "mounts": mounts},
    )  # fmt: skip


def _parser():
    """json.loads with a memo of the texts seen (for one list; its results are only read)."""
    seen = {}

    def parse(text):
        if text is None:
            return None
        if text not in seen:
            seen[text] = json.loads(text)
        return seen[text]

    return parse


# Rows whose Docker status is running or paused (render.STATUS), what `docker ps` lists.
_SHOWN_BY_DEFAULT = [k for k, v in render.STATUS.items() if v in ("running", "paused")]


def list_(call):
    """GET /containers/json?all=&filters=&limit=."""
    gate.authorize(call.user, "container.view", resource="container", summary=call.summary())
    rows = gate.restrict(
        Container.objects.filter(NOT_REMOVED),
        call.user,
        "container.view",
    ).order_by("-created_at", "-id")
    filters = call.filters(_LIST_FILTERS)
    wanted_all = call.flag("all") or "status" in filters
    if not wanted_all:
        rows = rows.filter(observed_state__in=_SHOWN_BY_DEFAULT)
    found = []
    parse = _parser()
    # Only the columns a summary shows, as plain values with the health row's in the same
    # query: building 500 model instances (with their team and host) was most of `docker ps`.
    for row in rows.values_list(*_SUMMARY_FIELDS, *_SUMMARY_TEXT.values()):
        container = _summary_row(row, parse)
        status = render.status_of(container)
        if not wanted_all and status not in ("running", "paused"):
            continue
        if not _matches(container, status, filters):
            continue
        found.append(render.summary(container, created=container.created))
    limit = call.integer("limit", -1)
    if limit and limit > 0:
        found = found[:limit]
    # Compact, as dockerd's Go encoder writes it (a tenth fewer bytes for the CLI to read).
    return JsonResponse(found, safe=False, json_dumps_params={"separators": (",", ":")})


def _matches(container, status: str, filters: dict) -> bool:
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        if key not in (container.labels or {}) or (sep and container.labels[key] != want):
            return False
    names = filters.get("name")
    if names and not any(n.lstrip("/") in container.name for n in names):
        return False
    statuses = filters.get("status")
    if statuses and status not in statuses:
        return False
    ids = filters.get("id")
    return not ids or any(docker_id(container).startswith(i) for i in ids)
