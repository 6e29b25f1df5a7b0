"""The gate's lookup of one object by id runs SQL compiled once per shape (api/object_lookup.py):
each user still sees only what the gate lets them see, and gets the same object back."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Team
from api import object_lookup
from containers.models import Container
from rbac.grants import forget
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


def _detail(client, pk):
    return client.get(f"/api/v1/containers/{pk}/")


def test_a_cached_shape_never_shows_another_teams_container(api, users, teams, host):
    mine = make_container(teams["alpha"], host, "tp-lk-a")
    theirs = make_container(teams["beta"], host, "tp-lk-b")
    admin, developer = api("admin"), api("developer")
    # The admin's shape (no team filter) is compiled first, for both rows.
    assert _detail(admin, theirs.pk).status_code == 200
    assert _detail(admin, mine.pk).status_code == 200
    # The developer's shape has its own SQL: alpha's row only, twice (compiled, then kept).
    for _ in range(2):
        assert _detail(developer, mine.pk).status_code == 200
        assert _detail(developer, theirs.pk).status_code == 404


def test_a_changed_grant_is_a_new_shape(api, users, teams, host):
    theirs = make_container(teams["beta"], host, "tp-lk-c")
    developer = api("developer")
    assert _detail(developer, theirs.pk).status_code == 404
    binding = RoleBinding.objects.create(
        user=users["developer"], role=Role.objects.get(name="developer"), scope_team=teams["beta"]
    )
    forget(users["developer"])
    assert _detail(developer, theirs.pk).status_code == 200
    binding.delete()
    forget(users["developer"])
    assert _detail(developer, theirs.pk).status_code == 404


def test_the_object_is_the_one_the_orm_builds(users, teams, host):
    container = make_container(teams["alpha"], host, "tp-lk-d", observed_state="stopped")
    container.spec = {**container.spec, "cmd": ["sleep", "9"], "env": ["A=é"]}
    container.save()
    expected = Container.objects.select_related("team", "host").get(pk=container.pk)
    queryset = Container.objects.select_related("team", "host").filter(team__in=[teams["alpha"]])
    shape = ("test", teams["alpha"].pk)
    for _ in range(2):  # compiled, then kept
        got = object_lookup.visible_by_pk(lambda: queryset.all(), Container, shape, container.pk)
        assert type(got) is Container and got.pk == container.pk
        for field in Container._meta.concrete_fields:
            assert getattr(got, field.attname) == getattr(expected, field.attname), field.name
        with CaptureQueriesContext(connection) as queries:
            assert got.team.name == teams["alpha"].name and got.host.name == host.name
        assert not queries.captured_queries  # the joined rows came with it
        assert got._state.db == "default" and not got._state.adding
    assert object_lookup.visible_by_pk(lambda: queryset.all(), Container, shape, 2**62) is None
    with CaptureQueriesContext(connection) as queries:
        object_lookup.visible_by_pk(lambda: queryset.all(), Container, shape, container.pk)
    assert len(queries.captured_queries) == 1


def test_what_one_query_cannot_build_goes_the_orm_way(users, teams):
    """Teams prefetch their members: the lookup is the ORM's, with its second query."""
    queryset = Team.objects.prefetch_related("members")
    shape = ("test-prefetch",)
    for _ in range(2):
        got = object_lookup.visible_by_pk(lambda: queryset.all(), Team, shape, teams["alpha"].pk)
        assert got == teams["alpha"]
        assert [u.pk for u in got.members.all()] == [users["developer"].pk]
    nothing = Team.objects.none()
    assert (
        object_lookup.visible_by_pk(lambda: nothing, Team, ("test-none",), teams["alpha"].pk)
        is None
    )
