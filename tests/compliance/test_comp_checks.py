"""Each compliance check finds a container (or image, or site setting) built to break it and
passes one built to follow it."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import ApiToken
from audit.models import ChainHead
from audit.services import record_event
from compliance import services
from compliance.checks import for_target
from compliance.models import ComplianceRun
from images.models import Image
from tests.compliance.conftest import good_spec

# check id -> how to break a copy of the good spec
IMPLIED = {
    "container.privileged": {"container.user-namespace"},
    "container.host-namespaces": {"container.user-namespace"},
    "container.user-namespace": {"container.host-namespaces"},
}
BREAKERS = {
    "container.privileged": lambda s: s.update(privileged=True),
    "container.host-namespaces": lambda s: s["namespaces"].update(pid="host"),
    "container.sensitive-mounts": lambda s: s["mounts"].append(
        {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}
    ),
    "container.capabilities": lambda s: s.update(cap_add=["SYS_ADMIN"]),
    "container.devices": lambda s: s.update(devices=["/dev/sda"]),
    "container.memory-limit": lambda s: s["limits"].update(memory=None),
    "container.pids-limit": lambda s: s["limits"].update(pids=-1),
    "container.writable-rootfs": lambda s: s.update(read_only_rootfs=False),
    "container.seccomp": lambda s: s.update(seccomp=False),
    "container.no-new-privileges": lambda s: s.update(no_new_privileges=False),
    "container.user-namespace": lambda s: s.update(namespaces={"user": "host"}),
    "container.privileged-ports": lambda s: s["network"]["ports"].append(
        {"container_port": 80, "host_port": 80}
    ),
    "container.root-user": lambda s: s.update(user="0"),
    "container.restart-limit": lambda s: s.update(restart={"name": "always", "max_retries": 0}),
    "container.healthcheck": lambda s: s.update(image="tc-nohealth:1"),
}


def _failures(run, object_type, object_id):
    return set(
        run.findings.filter(object_type=object_type, object_id=str(object_id)).values_list(
            "check_id", flat=True
        )
    )


def test_every_container_check_has_a_breaking_case():
    assert {c.id for c in for_target("container")} == set(BREAKERS)
    for check in for_target("container") + for_target("image") + for_target("site"):
        assert check.id and check.title and check.remediation
        assert check.severity in ("critical", "high", "medium", "low")


def test_each_container_check_finds_the_breaker_and_passes_the_follower(
    teams, host, good_image, make_container
):
    Image.objects.create(
        host=host,
        image_id="sha256:" + "b" * 64,
        repo_tags=["tc-nohealth:1"],
        config={"config": {"User": "app"}},
        created=timezone.now(),
    )
    good = make_container(teams["alpha"], "tc-good")
    broken = {}
    for check_id, breaker in BREAKERS.items():
        spec = good_spec("x")
        breaker(spec)
        broken[check_id] = make_container(teams["alpha"], f"tc-{check_id.split('.')[1]}", spec)
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "container", good.pk) == set()
    for check_id, container in broken.items():
        # Privileged mode and host namespaces keep the host's user namespace too; the host
        # user namespace is a host namespace.
        implied = IMPLIED.get(check_id, set())
        assert _failures(run, "container", container.pk) == {check_id} | implied, check_id


def test_restart_on_failure_needs_a_small_retry_limit(teams, good_image, make_container):
    spec = good_spec("x")
    spec["restart"] = {"name": "on-failure", "max_retries": 0}
    unlimited = make_container(teams["alpha"], "tc-unlimited", spec)
    spec = good_spec("y")
    spec["restart"] = {"name": "no"}
    never = make_container(teams["alpha"], "tc-never", spec)
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert "container.restart-limit" in _failures(run, "container", unlimited.pk)
    assert _failures(run, "container", never.pk) == set()


def test_the_specs_own_health_check_and_the_user_namespace_default_count(
    teams, good_image, make_container
):
    spec = good_spec("h")
    spec["image"] = "tc-nohealth:1"
    spec["healthcheck"] = {"test": ["CMD-SHELL", "true"], "interval": 5}
    spec["namespaces"] = {}  # the default: a private user namespace
    own = make_container(teams["alpha"], "tc-own-health", spec)
    spec = good_spec("o")
    spec["healthcheck"] = {"test": ["NONE"]}
    spec["privileged"] = True
    off = make_container(teams["alpha"], "tc-health-off", spec)
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    failures = _failures(run, "container", own.pk)
    assert "container.healthcheck" not in failures
    assert "container.user-namespace" not in failures
    assert {"container.healthcheck", "container.user-namespace"} <= _failures(
        run, "container", off.pk
    )


def test_root_from_the_image_counts_and_an_unknown_image_is_not_clean(
    teams, host, good_image, make_container
):
    spec = good_spec("x")
    spec.pop("user")
    spec["image"] = "tc-missing:1"
    container = make_container(teams["alpha"], "tc-unknown-image", spec)
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    # An image the host does not know gives no USER and no HEALTHCHECK: both fail.
    assert {"container.root-user", "container.healthcheck"} <= _failures(
        run, "container", container.pk
    )


def test_image_checks(host, good_image):
    old = Image.objects.create(
        host=host,
        image_id="sha256:" + "c" * 64,
        repo_tags=["tc-old:1"],
        config={"config": {"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}}},
        created=timezone.now() - timedelta(days=400),
    )
    rootful = Image.objects.create(
        host=host,
        image_id="sha256:" + "d" * 64,
        repo_tags=["tc-rootful:1"],
        config={"config": {"User": "0", "Healthcheck": {"Test": ["CMD", "true"]}}},
        created=timezone.now(),
    )
    unhealthy = Image.objects.create(
        host=host,
        image_id="sha256:" + "e" * 64,
        repo_tags=["tc-nohc:1"],
        config={"config": {"User": "app", "Healthcheck": {"Test": ["NONE"]}}},
        created=timezone.now(),
    )
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "image", good_image.pk) == set()
    assert _failures(run, "image", old.pk) == {"image.stale"}
    assert _failures(run, "image", rootful.pk) == {"image.no-user"}
    assert _failures(run, "image", unhealthy.pk) == {"image.no-healthcheck"}


@pytest.mark.parametrize("debug", [True, False])
def test_site_debug(db, debug):
    with override_settings(DEBUG=debug):
        run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert bool(_failures(run, "site", "site") & {"site.debug"}) is debug


@pytest.mark.parametrize(
    "url,fails",
    [("redis://127.0.0.1:6379/0", True), ("redis://:s3cret@127.0.0.1:6379/0", False)],
)
def test_site_redis_without_password(db, url, fails):
    with override_settings(CELERY_BROKER_URL=url):
        run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert ("site.redis-auth" in _failures(run, "site", "site")) is fails


def test_site_audit_chain(db):
    record_event(action="compliance.view", outcome="allowed", reason="test")
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert "site.audit-chain" not in _failures(run, "site", "site")
    # The head no longer matches the last event: what removing events at the end looks like.
    ChainHead.objects.filter(pk=1).update(seq=10**6)
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert "site.audit-chain" in _failures(run, "site", "site")


def test_site_tokens_and_heartbeats(users, host):
    short, _ = ApiToken.issue(users["viewer"], "tc-short", days=30)
    long, _ = ApiToken.issue(users["viewer"], "tc-long", days=30)
    ApiToken.objects.filter(pk=long.pk).update(expires_at=timezone.now() + timedelta(days=900))
    type(host).objects.filter(pk=host.pk).update(last_heartbeat=None)
    beating = type(host).objects.create(name="tc-h2", state="up", last_heartbeat=timezone.now())
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "token", long.pk) == {"site.token-expiry"}
    assert _failures(run, "token", short.pk) == set()
    assert _failures(run, "host", host.pk) == {"site.host-heartbeat"}
    assert _failures(run, "host", beating.pk) == set()


def test_image_inventory_and_vulnerability_checks(host, good_image):
    from compliance import inventories
    from compliance.models import Advisory, ImageAdvisory

    unknown = Image.objects.create(
        host=host,
        image_id="sha256:" + "f" * 64,
        repo_tags=["tc-unknown:1"],
        config=good_image.config,
        created=timezone.now(),
    )
    inventories.save(unknown, {"status": "unknown", "error": "an rpm database"})
    vulnerable = Image.objects.create(
        host=host,
        image_id="sha256:" + "9" * 64,
        repo_tags=["tc-vuln:1"],
        config=good_image.config,
        created=timezone.now(),
    )
    inventory = inventories.save(vulnerable, {"status": "ok", "ecosystem": "Debian:12"})
    low = Advisory.objects.create(osv_id="TC-LOW", severity="low")
    ImageAdvisory.objects.create(
        inventory=inventory, advisory=low, host=host, package="p", installed="1", severity="low"
    )
    inventories.save(good_image, {"status": "ok", "ecosystem": "Debian:12"})
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "image", unknown.pk) == {"image.package-inventory"}
    assert _failures(run, "image", vulnerable.pk) == set()  # low only
    high = Advisory.objects.create(osv_id="TC-HIGH", severity="high")
    ImageAdvisory.objects.create(
        inventory=inventory, advisory=high, host=host, package="p", installed="1", severity="high"
    )
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "image", vulnerable.pk) == {"image.vulnerabilities"}
    assert _failures(run, "image", good_image.pk) == set()


def test_image_whose_recipe_found_a_newer_base(host, good_image):
    from compliance.models import BuildRecipe

    recipe = BuildRecipe.objects.create(
        host=host,
        image_row=good_image,
        image_id=good_image.image_id,
        tag="tc-good:1",
        context_digest="sha256:" + "0" * 64,
        bases=[{"ref": "reg.example/tc/base:1", "digest": "sha256:" + "1" * 64}],
    )
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "image", good_image.pk) == set()
    BuildRecipe.objects.filter(pk=recipe.pk).update(
        base_newer=True,
        check_result={"bases": [{"ref": "reg.example/tc/base:1", "newer": True}], "newer": True},
    )
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert _failures(run, "image", good_image.pk) == {"image.base-outdated"}
