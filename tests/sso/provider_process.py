"""The test OIDC provider as a process: django-oauth-toolkit's runserver on a loopback port,
its own data directory, stopped by its PID."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sso.slapd import free_port
from tests.sso.sso_helpers import stop_process

HERE = Path(__file__).resolve().parent / "provider"
CLIENT_ID = "berth-test-client"
CLIENT_SECRET = "berth-test-client-secret-0123456789"
PASSWORDS = {"ts-carl": "carl-idp-pw", "ts-oscar": "oscar-idp-pw", "ts-ursula": "ursula-idp-pw"}


class Provider:
    """One provider process; `berth_port` is reserved for a Berth web server of the tests."""

    def __init__(self, data: Path):
        self.data = Path(data)
        self.port = free_port()
        self.berth_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/o"
        self.proc = None

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BERTH_"))}
        env.update(
            IDP_DIR=str(self.data),
            IDP_CLIENT_ID=CLIENT_ID,
            IDP_CLIENT_SECRET=CLIENT_SECRET,
            DJANGO_SETTINGS_MODULE="idp_settings",
            PYTHONPATH=str(HERE),
        )
        return env

    def start(self) -> "Provider":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.data / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        redirects = [
            "http://testserver/sso/oidc/callback/",
            f"http://127.0.0.1:{self.berth_port}/sso/oidc/callback/",
        ]
        logouts = ["http://testserver/login/", f"http://127.0.0.1:{self.berth_port}/login/"]
        subprocess.run(
            [sys.executable, str(HERE / "idp_setup.py"), ",".join(redirects), ",".join(logouts)],
            env=self._env(),
            check=True,
            capture_output=True,
            cwd=HERE,
        )
        self.log = open(self.data / "idp.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.port}",
            ],
            env=self._env(),
            cwd=HERE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.data / "idp.log").read_text()[-3000:])
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("the OIDC provider did not answer")

    def tamper(self, mode: str) -> None:
        """'' (honest), 'signature', 'audience', 'expired' or 'nonce'."""
        (self.data / "tamper").write_text(mode)

    def berth_settings(self, **overrides) -> dict:
        """A BERTH_OIDC dictionary for Berth as this provider's client."""
        return {
            "ISSUER": self.issuer,
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET,
            "SCOPES": "openid profile email",
            "GROUPS_CLAIM": "groups",
            "USERNAME_CLAIM": "preferred_username",
            "REDIRECT_URI": "",
            "LABEL": "Sign in with SSO",
        } | overrides

    def session(self, username: str) -> requests.Session:
        """A requests session signed in at the provider (a browser's provider cookie)."""
        s = requests.Session()
        login = f"{self.url}/accounts/login/"
        s.get(login, timeout=10)
        response = s.post(
            login,
            data={
                "username": username,
                "password": PASSWORDS[username],
                "csrfmiddlewaretoken": s.cookies["idp_csrftoken"],
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text[:500]
        return s

    def access_tokens(self) -> list[str]:
        """Every access token the provider issued (to check none reached a log)."""
        import sqlite3

        with sqlite3.connect(self.data / "idp.sqlite3") as db:
            return [row[0] for row in db.execute("select token from oauth2_provider_accesstoken")]

    def stop(self) -> None:
        """Stop the process by its PID; its data directory goes with pytest's tmp_path."""
        stop_process(self.proc, getattr(self, "log", None))
        shutil.rmtree(self.data / "unused", ignore_errors=True)
