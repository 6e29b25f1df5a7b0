"""Mapping changes shared by the REST API and the dashboard: one gate call, one audit row."""

import dataclasses

from django.db import transaction

from accounts.services import member_options
from config.errors import InvalidRequest
from directory.models import SOURCES, GroupMapping
from rbac import gate


def mapping_options(mapping) -> dict:
    """Gate options for a mapping: everyone in the group receives the team's bindings and the
    mapped role on the team, so the admin must hold all of that there (escalation rule)."""
    grants = member_options(mapping.team, None)["grants"] if mapping.team_id else []
    if mapping.role_id:
        grants.append(
            {
                "permissions": mapping.role.permissions,
                "bind_paths": mapping.role.bind_paths,
                "team_id": mapping.team_id,
                "host_id": None,
            }
        )
    return {"grants": grants}


def _summary(mapping, summary) -> dict:
    return (summary or {}) | {
        "source": mapping.source,
        "group": mapping.group,
        "team": mapping.team.name if mapping.team_id else None,
        "role": mapping.role.name if mapping.role_id else None,
    }


def do_create_mapping(*, source, group, team, role=None, acting_user, summary=None):
    """A new group mapping (directory.manage on its team), audited with what it grants."""
    group = (group or "").strip()
    if source not in dict(SOURCES):
        raise InvalidRequest(f"source must be one of: {', '.join(dict(SOURCES))}")
    if not group or len(group) > 255:
        raise InvalidRequest("a mapping needs a group name of at most 255 characters")
    if team is None and role is None:
        raise InvalidRequest("a mapping needs a team, a role, or both")
    mapping = GroupMapping(source=source, group=group, team=team, role=role, created_by=acting_user)
    decision = gate.require(
        acting_user,
        "directory.manage",
        mapping,
        resource="directory",
        options=mapping_options(mapping),
        summary=summary,
    )
    duplicate = GroupMapping.objects.filter(
        source=source, group__iexact=group, team=team, role=role
    )
    if duplicate.exists():
        raise InvalidRequest("this mapping exists already")
    with transaction.atomic():
        mapping.save(force_insert=True)
        gate.record(dataclasses.replace(decision, obj=mapping), summary=_summary(mapping, summary))
    return mapping


def do_delete_mapping(mapping, *, acting_user, summary=None) -> None:
    """Remove a mapping; members lose what it gave them at their next sign-in."""
    decision = gate.require(
        acting_user, "directory.manage", mapping, resource="directory", summary=summary
    )
    with transaction.atomic():
        gate.record(decision, summary=_summary(mapping, summary))
        mapping.delete()
