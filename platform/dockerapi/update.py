"""POST /containers/{id}/update: new resource limits, through the checks a create gets.

The new limits are merged into the container's spec, which must still parse (the REST API's
`parse_spec`), stay within the caller's role maxima (containers/maxima.py) and, for a container
meant to run, within its team's memory and CPU quotas counting the change only (quotas.py). The
decision is container.change; refusals are audited. The host agent writes the limits into the
running container's cgroup and into its record, so later starts keep them (agent/update_ops.py).
"""

from django.db import transaction
from django.http import JsonResponse

from containers import maxima, quotas, services
from containers.api.spec import parse_spec
from containers.models import Container
from dockerapi.containers import finish
from dockerapi.errors import not_supported
from dockerapi.limits import limits_of
from dockerapi.refs import find_container
from operations import dispatch
from rbac import gate
from rbac.grants import in_scope

# What Berth can change live; any other field must be empty (the CLI sends them all).
LIMIT_FIELDS = {
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "CpuShares",
    "CpusetCpus",
    "PidsLimit",
    "BlkioWeight",
}


def _empty(key: str, value) -> bool:
    if key == "RestartPolicy":
        return not (value or {}).get("Name")
    return value in (None, 0, "", [], {}, False) or (key == "MemorySwappiness" and value == -1)


def update(call, ref):
    """Change the limits of a container; {"Warnings": []} as Docker answers."""
    body = call.json()
    given = [k for k, v in body.items() if not _empty(k, v)]
    other = sorted(set(given) - LIMIT_FIELDS)
    if other:
        raise not_supported(
            f"updating {other[0]} (Berth updates {', '.join(sorted(LIMIT_FIELDS))})"
        )
    container = find_container(call, ref, "container.change")
    summary = call.summary(limits={k: body[k] for k in given})
    decision = gate.require(call.user, "container.change", container, summary=summary)
    changes = limits_of({k: body[k] for k in given})
    limits = {**(container.spec.get("limits") or {}), **changes}
    spec = parse_spec({**container.spec, "limits": limits})
    problems = maxima.violations(
        spec, in_scope(call.user, container.team_id, container.host_id).max_limits
    )
    services.check_broker(decision, summary)
    with quotas.guarded(decision, summary), transaction.atomic():
        if problems:
            raise quotas.QuotaExceeded(problems)
        if container.desired_state in (Container.Desired.RUNNING, Container.Desired.PAUSED):
            _enforce_delta(container, spec)
        Container.objects.filter(pk=container.pk).update(spec=spec)
        op = dispatch.new_operation(
            kind="container.update",
            target_type="container",
            target_id=container.pk,
            host=container.host,
            team=container.team,
            params={"limits": spec.get("limits") or {}},
            user=call.user,
        )
        gate.record(decision, summary=summary, operation=op)
        dispatch.send_after_commit(op)
    finish(op)
    return JsonResponse({"Warnings": []})


def _enforce_delta(container, spec: dict) -> None:
    """The team's memory and CPU quotas with this container's old limits replaced by the new."""
    team = quotas._locked(container.team)
    limit = team.quotas or {}
    if not limit:
        return
    used = quotas.usage(team)
    old, new = maxima.asked(container.spec), maxima.asked(spec)
    problems = []
    for key in ("memory", "cpus"):
        quota = limit.get(key)
        if not isinstance(quota, int):
            continue
        if new[key] is None:
            problems.append(f"{key}: team {team.name} has a {key} quota, so a limit is required")
        elif used[key] - (old[key] or 0) + new[key] > quota:
            problems.append(
                f"{key}: team {team.name}'s quota is {quota}, {used[key]} in use, this update "
                f"asks {new[key] - (old[key] or 0)} more"
            )
    if problems:
        raise quotas.QuotaExceeded(problems)
