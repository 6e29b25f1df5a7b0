"""GET /events: Docker's event stream, derived from the Operations hosts carried out.

The source of truth for what happened to a container, image, network or volume is its
Operation row: it is written before the host acts and finished (`finished_at`) when the host
has done it, so a succeeded Operation is an event. A container that exits by itself has no
Operation: its `die` comes from its row (stopped, with an exit code, after its last start).
Only objects of teams the caller may see are shown (the gate's restrict, per resource).

Bounded queries (`until` in the past, or reached while streaming) end; otherwise the
stream polls the rows once a second and sends what finished since, until the client leaves.
"""

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from audit.models import AuditEvent
from containers.models import Container
from dockerapi.errors import bad_request
from dockerapi.networks import network_id
from dockerapi.refs import PENDING_PREFIX
from networks.models import Network
from operations.models import Operation
from rbac import gate

POLL_SECONDS = 1.0
LOOKBACK = timedelta(seconds=10)  # rows committed late still get their turn
MAX_STREAM_SECONDS = 24 * 3600
_FILTERS = {"type", "event", "container", "image", "network", "volume", "label"}
_TYPES = ("container", "image", "network", "volume")

# Operation kind -> Docker actions, in the order Docker emits them.
_CONTAINER_ACTIONS = {
    "container.create": ["create"],
    "container.run": ["create", "start"],
    "container.start": ["start"],
    "container.stop": ["kill", "die", "stop"],
    "container.kill": ["kill", "die"],
    "container.restart": ["kill", "die", "stop", "start", "restart"],
    "container.pause": ["pause"],
    "container.unpause": ["unpause"],
    "container.rename": ["rename"],
    "container.remove": ["destroy"],
    "container.delete": ["destroy"],
}
_OTHER_ACTIONS = {
    "image.pull": ["pull"],
    "image.push": ["push"],
    "image.tag": ["tag"],
    "image.remove": ["delete"],
    "image.delete": ["delete"],
    "image.import": ["load"],
    "image.save": ["save"],
    "image.commit": ["create"],
    "network.create": ["create"],
    "network.remove": ["destroy"],
    "volume.create": ["create"],
    "volume.remove": ["destroy"],
}
_JOINS = {"container.network_connect": "connect", "container.network_disconnect": "disconnect"}
_EXIT_KINDS = ("container.stop", "container.kill", "container.restart", "container.remove")


def _moment(raw: str | None, now: datetime, name: str):
    """A Unix timestamp (with fraction) or RFC 3339 time, as the docker CLI sends them."""
    if raw in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC)
    except (ValueError, OverflowError):
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"invalid {name} {raw!r} (a Unix timestamp or RFC 3339 time)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> dict:
    nanos = int(moment.timestamp() * 1_000_000) * 1000
    return {"time": nanos // 1_000_000_000, "timeNano": nanos}


def _event(kind: str, action: str, actor_id: str, attributes: dict, moment: datetime) -> dict:
    event = {
        "Type": kind,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": attributes},
        "scope": "local",
        **_stamp(moment),
    }
    if kind == "container":
        # The fields Docker still sends for containers (older clients read them).
        event |= {"status": action, "id": actor_id, "from": attributes.get("image", "")}
    return event


class Source:
    """The caller's events in a time window; remembers what it sent (a stream polls it)."""

    def __init__(self, user, filters: dict):
        self.user, self.filters = user, filters
        self.sent: dict[tuple, datetime] = {}

    def _visible_ops(self, resource: str, start, end):
        ops = Operation.objects.filter(
            state=Operation.State.SUCCEEDED,
            target_type=resource,
            finished_at__gte=start,
            finished_at__lt=end,
        ).order_by("finished_at", "id")
        return gate.restrict(ops, self.user, f"{resource}.view")

    def window(self, start: datetime, end: datetime) -> list[dict]:
        """Events with start <= time < end, oldest first, each sent once by this source."""
        found: list[tuple[datetime, int, dict]] = []
        wanted_types = self.filters.get("type") or list(_TYPES)
        if "container" in wanted_types:
            found += self._containers(start, end)
        for resource in ("image", "network", "volume"):
            if resource in wanted_types:
                found += self._others(resource, start, end)
        found.sort(key=lambda item: (item[0], item[1]))
        events = []
        for moment, order, event in found:
            key = (event["Type"], event["Action"], event["Actor"]["ID"], order)
            if key in self.sent or not self._wanted(event):
                continue
            self.sent[key] = moment
            events.append(event)
        horizon = end - 2 * LOOKBACK
        self.sent = {k: v for k, v in self.sent.items() if v >= horizon}
        return events

    def _containers(self, start, end) -> list:
        ops = list(
            self._visible_ops("container", start, end).filter(kind__in=list(_CONTAINER_ACTIONS))
        )
        rows = {
            str(c.pk): c
            for c in gate.restrict(
                Container.objects.filter(
                    pk__in={int(o.target_id) for o in ops if o.target_id.isdigit()}
                ),
                self.user,
                "container.view",
            )
        }
        found = []
        for op in ops:
            container = rows.get(op.target_id)
            if container is None:
                continue
            for step, action in enumerate(_CONTAINER_ACTIONS[op.kind]):
                attributes = self._container_attributes(container)
                if action == "die":
                    attributes["exitCode"] = str((op.result or {}).get("exit_code") or 0)
                if action == "rename":
                    attributes["oldName"] = f"/{(op.params or {}).get('old', '')}"
                moment = op.finished_at + timedelta(microseconds=step)
                found.append(
                    (
                        moment,
                        op.pk,
                        _event("container", action, _id(container, op), attributes, moment),
                    )
                )
        return found + self._exits(start, end)

    def _exits(self, start, end) -> list:
        """`die` of containers that stopped by themselves (no stop, kill or remove asked)."""
        stopped = gate.restrict(
            Container.objects.filter(
                observed_state__in=(Container.Observed.STOPPED, Container.Observed.REMOVED),
                exit_code__isnull=False,
                observed_at__gte=start,
                observed_at__lt=end,
            ),
            self.user,
            "container.view",
        )
        found = []
        for container in stopped:
            last = (
                Operation.objects.filter(
                    target_type="container",
                    target_id=str(container.pk),
                    state=Operation.State.SUCCEEDED,
                    kind__in=("container.create", "container.run", "container.start", *_EXIT_KINDS),
                )
                .order_by("-finished_at", "-id")
                .first()
            )
            if last is None or last.kind in _EXIT_KINDS:
                continue  # never ran, or its end was asked for (that Operation is the event)
            if last.kind == "container.create" and not (last.params or {}).get("start"):
                continue
            # One `die` per run: stamped after the start that began it, at the row's last look.
            moment = max(container.observed_at, last.finished_at + timedelta(microseconds=10))
            attributes = self._container_attributes(container) | {
                "exitCode": str(container.exit_code)
            }
            found.append(
                (
                    moment,
                    last.pk,
                    _event("container", "die", docker_id_of(container), attributes, moment),
                )
            )
        return found

    @staticmethod
    def _container_attributes(container) -> dict:
        return {**(container.labels or {}), "image": container.image, "name": container.name}

    def _others(self, resource: str, start, end) -> list:
        kinds = [k for k in _OTHER_ACTIONS if k.startswith(f"{resource}.")]
        ops = list(self._visible_ops(resource, start, end).filter(kind__in=kinds))
        # Removed networks and volumes have no row any more: their names are in the audit log.
        names = dict(
            AuditEvent.objects.filter(operation_id__in=[o.pk for o in ops])
            .exclude(object_repr="")
            .values_list("operation_id", "object_repr")
        )
        found = []
        for op in ops:
            name = names.get(op.pk) or (op.params or {}).get("name") or op.target_id
            for action in _OTHER_ACTIONS[op.kind]:
                if resource == "network":
                    actor, attributes = _network_actor(op, name)
                elif resource == "volume":
                    actor, attributes = name, {"driver": "local"}
                else:
                    actor = (op.result or {}).get("image_id") or name
                    attributes = {"name": str((op.params or {}).get("ref") or name)}
                found.append(
                    (
                        op.finished_at,
                        op.pk,
                        _event(resource, action, actor, attributes, op.finished_at),
                    )
                )
        return found + (self._joins(start, end) if resource == "network" else [])

    def _joins(self, start, end) -> list:
        """`connect`/`disconnect` of networks: Operations on the container (networks/joins.py)."""
        ops = list(self._visible_ops("container", start, end).filter(kind__in=list(_JOINS)))
        rows = {
            str(c.pk): c
            for c in gate.restrict(
                Container.objects.filter(
                    pk__in={int(o.target_id) for o in ops if o.target_id.isdigit()}
                ),
                self.user,
                "container.view",
            )
        }
        found = []
        for op in ops:
            container, name = rows.get(op.target_id), (op.params or {}).get("network") or ""
            if container is None or not name:
                continue
            network = Network.objects.filter(host_id=container.host_id, name=name).first()
            actor = network_id(network) if network else name
            attributes = {"container": _id(container, op), "name": name, "type": "bridge"}
            found.append(
                (
                    op.finished_at,
                    op.pk,
                    _event("network", _JOINS[op.kind], actor, attributes, op.finished_at),
                )
            )
        return found

    def _wanted(self, event: dict) -> bool:
        f = self.filters
        actor, attributes = event["Actor"]["ID"], event["Actor"]["Attributes"]
        if f.get("event") and event["Action"] not in f["event"]:
            return False
        kind = event["Type"]
        for key in ("container", "image", "network", "volume"):
            values = f.get(key)
            if not values:
                continue
            if kind != key and not (key == "image" and kind == "container"):
                return False
            names = {actor, attributes.get("name", ""), attributes.get("image", "")}
            if not any(v in names or actor.startswith(v) for v in values):
                return False
        for value in f.get("label", []):
            label, sep, want = value.partition("=")
            if label not in attributes or (sep and attributes[label] != want):
                return False
        return True


def docker_id_of(container) -> str:
    return container.runtime_id or f"{PENDING_PREFIX}{container.pk}"


def _id(container, op) -> str:
    return (op.result or {}).get("id") or docker_id_of(container)


def _network_actor(op, name: str) -> tuple[str, dict]:
    class _Row:  # network_id() needs only the primary key
        pk = op.target_id

    return network_id(_Row), {"name": name, "type": "bridge"}


def events(call):
    """GET /events?since=&until=&filters=."""
    filters = call.filters(_FILTERS)
    unknown = set(filters.get("type", [])) - set(_TYPES)
    if unknown:
        raise bad_request(f"invalid filter 'type={sorted(unknown)[0]}'")
    now = timezone.now()
    since = _moment(call.query.get("since"), now, "since")
    until = _moment(call.query.get("until"), now, "until")
    if since and until and until < since:
        raise bad_request("since must be before until")
    gate.authorize(call.user, "container.view", resource="container", summary=call.summary())
    source = Source(call.user, filters)
    if until is not None and until <= now:
        # Over already: one answer, read here (`docker events --since 1m --until 0s`).
        lines = [json.dumps(e) + "\n" for e in source.window(since or until, until)]
        return HttpResponse("".join(lines).encode(), content_type="application/json")

    def poll(start, end):
        try:
            return source.window(start, end)
        finally:
            connection.close()

    async def body():
        floor = cursor = since or timezone.now()
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while time.monotonic() < deadline:
            now = timezone.now()
            end = min(now, until) if until else now
            # Each poll looks back a little: a row finished just before it may commit after.
            start = max(floor, cursor - LOOKBACK)
            for event in await sync_to_async(poll, thread_sensitive=False)(start, end):
                yield (json.dumps(event) + "\n").encode()
            cursor = end
            if until and end >= until:
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingHttpResponse(body(), content_type="application/json")
