"""Bearer-token authentication (the Docker Hub flow) against a real registry, and saved logins."""

import stat
import subprocess

import pytest
from registry_helpers import TEST_PASSWORD, TEST_USER, make_oci_layout, needs_registry, skopeo

from runtime.config import RuntimeConfig
from runtime.images.store import ImageStore
from runtime.registry import CredentialStore, RegistryAuthError, RegistryClient, login, pull, push

pytestmark = [pytest.mark.root, needs_registry]
CREDS = (TEST_USER, TEST_PASSWORD)


@pytest.fixture
def config(tmp_path):
    return RuntimeConfig(root=tmp_path / "state", run_root=tmp_path / "run", prefix="tauth")


@pytest.fixture
def store(config):
    return ImageStore(config)


def _skopeo_push(layout, target):
    try:
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{TEST_USER}:{TEST_PASSWORD}",
            f"oci:{layout}:latest",
            f"docker://{target}",
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(exc.stderr)


def test_token_registry_skopeo_push_berth_pull_and_push(token_registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"tok": b"behind a token server"}])
    _skopeo_push(tmp_path / "l", f"{token_registry.host}/auth/img:1")

    result = pull(store, f"{token_registry.host}/auth/img:1", credentials=CREDS)
    assert result.image.id == info["config_digest"]
    # The token server saw Berth ask for exactly the pull scope of that repository.
    scopes = [
        s for r in token_registry.tokens.requests if r["user"] == TEST_USER for s in r["scope"]
    ]
    assert "repository:auth/img:pull" in scopes

    pushed = push(store, result.image.id, f"{token_registry.host}/auth/copy:2", credentials=CREDS)
    # Pull and push of the target, in whichever order the registry's challenge named them
    # (distribution names "push,pull"; Berth's own scope, asked when none is named, "pull,push").
    copy_actions = [
        set(s.rpartition(":")[2].split(","))
        for r in token_registry.tokens.requests
        for s in r["scope"]
        if s.startswith("repository:auth/copy:")
    ]
    assert {"pull", "push"} in copy_actions
    store.remove(result.image.id, force=True)
    back = pull(store, f"{token_registry.host}/auth/copy@{pushed.digest}", credentials=CREDS)
    assert back.image.id == info["config_digest"]


def test_token_registry_refuses_wrong_password_and_anonymous(token_registry, store, tmp_path):
    make_oci_layout(tmp_path / "l", [{"p": b"private"}])
    _skopeo_push(tmp_path / "l", f"{token_registry.host}/auth/private:1")
    with pytest.raises(RegistryAuthError, match="refused the credentials for user 'berth'"):
        pull(store, f"{token_registry.host}/auth/private:1", credentials=(TEST_USER, "wrong"))
    with pytest.raises(RegistryAuthError, match="requires a login"):
        pull(store, f"{token_registry.host}/auth/private:1")
    assert store.list() == []


def test_login_checks_then_saves_with_mode_600(token_registry, config):
    with pytest.raises(RegistryAuthError):
        login(config, token_registry.host, TEST_USER, "wrong")
    assert not CredentialStore(config).path.exists()

    login(config, token_registry.host, TEST_USER, TEST_PASSWORD)
    saved = CredentialStore(config)
    assert saved.get(token_registry.host) == CREDS
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    assert TEST_PASSWORD not in saved.path.read_text()  # base64 as Docker's config, not plain

    assert saved.remove(token_registry.host) is True
    assert saved.get(token_registry.host) is None


def test_catalog_needs_its_own_scope(token_registry, tmp_path):
    make_oci_layout(tmp_path / "l", [{"c": b"catalogued"}])
    _skopeo_push(tmp_path / "l", f"{token_registry.host}/auth/listed:1")
    client = RegistryClient(token_registry.host, username=TEST_USER, password=TEST_PASSWORD)
    assert "auth/listed" in client.catalog()
    assert client.tags("auth/listed") == ["1"]


def test_basic_auth_registry(basic_registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"basic": b"behind basic auth"}])
    _skopeo_push(tmp_path / "l", f"{basic_registry.host}/basic/img:1")
    with pytest.raises(RegistryAuthError, match="requires a login"):
        pull(store, f"{basic_registry.host}/basic/img:1")
    with pytest.raises(RegistryAuthError, match="refused the credentials"):
        pull(store, f"{basic_registry.host}/basic/img:1", credentials=(TEST_USER, "nope"))
    result = pull(store, f"{basic_registry.host}/basic/img:1", credentials=CREDS)
    assert result.image.id == info["config_digest"]
    pushed = push(store, result.image.id, f"{basic_registry.host}/basic/copy:1", credentials=CREDS)
    assert pushed.digest == info["manifest_digest"]
