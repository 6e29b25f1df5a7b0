"""The gate's scopes: global, team and host bindings; public objects; team bindings via membership."""

import pytest

from accounts.models import Membership, User
from containers.models import Container
from hosts.models import Host
from images.models import Image
from rbac import gate
from rbac.grants import forget
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_host(db):
    return Host.objects.create(name="tp-h2")


def _names(queryset):
    return sorted(queryset.values_list("name", flat=True))


def test_team_scope(users, containers):
    developer = users["developer"]
    assert gate.decide(developer, "container.start", containers["alpha"]).allowed
    decision = gate.decide(developer, "container.start", containers["beta"])
    assert not decision.allowed and "container.start" in decision.reason
    assert _names(gate.restrict(Container.objects.all(), developer, "container.start")) == [
        "tp-web-a"
    ]


def test_host_scope(users, teams, host, second_host):
    on_h2 = make_container(teams["beta"], second_host, "tp-on-h2")
    make_container(teams["alpha"], host, "tp-on-h1")
    hostop = User.objects.create_user(username="tp-hostop")
    RoleBinding.objects.create(
        user=hostop, role=Role.objects.get(name="operator"), scope_host=second_host
    )
    assert gate.decide(hostop, "container.stop", on_h2).allowed
    assert _names(gate.restrict(Container.objects.all(), hostop, "container.stop")) == ["tp-on-h2"]


def test_binding_through_team_membership(users, teams, containers):
    rando = users["rando"]
    RoleBinding.objects.create(
        team=teams["beta"], role=Role.objects.get(name="viewer"), scope_team=teams["beta"]
    )
    assert not gate.decide(rando, "container.view", containers["beta"]).allowed
    Membership.objects.create(team=teams["beta"], user=rando)
    forget(rando)
    assert gate.decide(rando, "container.view", containers["beta"]).allowed
    assert not gate.decide(rando, "container.stop", containers["beta"]).allowed
    assert _names(gate.restrict(Container.objects.all(), rando, "container.view")) == ["tp-web-b"]


def test_public_images_and_team_images(users, teams, host):
    Image.objects.create(host=host, image_id="sha256:" + "a" * 64, repo_tags=["busybox:latest"])
    Image.objects.create(
        host=host, team=teams["alpha"], image_id="sha256:" + "b" * 64, repo_tags=["alpha/app:1"]
    )
    Image.objects.create(
        host=host, team=teams["beta"], image_id="sha256:" + "c" * 64, repo_tags=["beta/app:1"]
    )
    visible = gate.restrict(Image.objects.all(), users["developer"], "image.view")
    assert sorted(t for i in visible for t in i.repo_tags) == ["alpha/app:1", "busybox:latest"]
    public = Image.objects.get(team__isnull=True)
    assert gate.decide(users["developer"], "image.view", public).allowed
    assert not gate.decide(
        users["developer"], "image.tag", public
    ).allowed  # team grant, no team image
    assert gate.restrict(Image.objects.all(), users["rando"], "image.view").count() == 0


def test_unknown_action_is_a_programming_error(users):
    with pytest.raises(ValueError):
        gate.decide(users["admin"], "container.fly")


def test_inactive_and_anonymous_are_denied(users, containers):
    from django.contrib.auth.models import AnonymousUser

    assert not gate.decide(AnonymousUser(), "container.view", containers["alpha"]).allowed
    admin = users["admin"]
    admin.is_active = False
    assert not gate.decide(admin, "container.view", containers["alpha"]).allowed
    assert gate.restrict(Container.objects.all(), admin, "container.view").count() == 0
