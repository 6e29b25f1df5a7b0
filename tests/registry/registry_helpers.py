"""Helpers of the registry tests: docker-registry and token servers, OCI layouts, skopeo."""

import base64
import datetime
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
TEST_USER, TEST_PASSWORD = "berth", "s3cret-pass"

needs_registry = pytest.mark.skipif(
    REGISTRY_BIN is None or SKOPEO is None,
    reason="apt-get install docker-registry skopeo",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryServer:
    """One `docker-registry serve` process with storage in a temporary directory."""

    def __init__(
        self,
        workdir: Path,
        auth: dict | None = None,
        auth_kind: str = "token",
        tls: tuple | None = None,
    ):
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        self.tls = bool(tls)
        if auth:
            lines += ["auth:", f"  {auth_kind}:"] + [f"    {k}: {v}" for k, v in auth.items()]
        self.config = workdir / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.workdir / 'registry.log').read_text()}"
                )
            try:
                if self.tls:
                    import ssl

                    ctx = ssl._create_unverified_context()
                    urllib.request.urlopen(
                        f"https://{self.host}/v2/", timeout=1, context=ctx
                    ).read()
                else:
                    urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).read()
                return
            except urllib.error.HTTPError:
                return  # 401 from a token setup: it is up
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        """Stop the process this fixture started, by its PID."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """The key id docker/distribution derives from a public key (libtrust fingerprint)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).digest()[:30]
    b32 = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


class TokenServer:
    """A tiny token server: basic auth in, RS256 JWT out, as docker/distribution expects."""

    service = "berth-test-registry"
    issuer = "berth-test-issuer"

    def __init__(self, workdir: Path):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server._handle(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth(self) -> dict:
        """The registry's `auth: token:` settings pointing at this server."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.cert_path),
        }

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(req.path).query)
        header = req.headers.get("Authorization", "")
        user = ""
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (name, password) != (TEST_USER, TEST_PASSWORD):
                self._send(req, 401, {"details": "incorrect username or password"})
                return
            user = name
        self.requests.append({"user": user, "scope": query.get("scope", [])})
        access = []
        for scope in query.get("scope", []):
            kind, _, name = scope.partition(":")
            name, _, actions = name.rpartition(":")
            granted = [a for a in actions.split(",") if a] if user else []
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": base64.b16encode(os.urandom(8)).decode(),
            "access": access,
        }
        head = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing = _b64url(json.dumps(head).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        self._send(req, 200, {"token": signing + "." + _b64url(sig), "expires_in": 300})

    @staticmethod
    def _send(req, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- test images, made without Berth: an OCI layout directory that skopeo can push --------


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding `files` (path -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_oci_layout(dest: Path, layers: list[dict[str, bytes]], tag="latest", arch="amd64") -> dict:
    """Write an OCI layout with gzip layers; returns {"manifest_digest", "config_digest", ...}."""
    import gzip

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return "sha256:" + hexd

    descs, diff_ids = [], []
    for files in layers:
        raw = layer_tar(files)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, mtime=0)
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put(gz),
                "size": len(gz),
            }
        )
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
        }
    ).encode()
    cdig = put(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cdig,
                "size": len(config),
            },
            "layers": descs,
        }
    ).encode()
    mdig = put(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdig,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return {"manifest_digest": mdig, "config_digest": cdig, "diff_ids": diff_ids, "layers": descs}


def skopeo(*args: str) -> subprocess.CompletedProcess:
    """Run skopeo against loopback registries (plain HTTP, no TLS)."""
    done = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        # Raised as CalledProcessError (tests catch it) but with skopeo's own words attached.
        raise subprocess.CalledProcessError(
            done.returncode,
            f"skopeo {' '.join(args)}: {done.stderr.strip()}",
            done.stdout,
            done.stderr,
        )
    return done


def skopeo_push_layout(layout: Path, tag: str, target: str) -> None:
    """Push an OCI layout directory to docker://target with skopeo."""
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{target}")


def cleanup_runtime(rt) -> None:
    """Delete every container of a test runtime, then its empty cgroup parents."""
    import contextlib

    from runtime.cgroups.base import remove_tree
    from runtime.errors import BerthError

    for container in rt.list():
        with contextlib.suppress(BerthError):
            rt.delete(container["id"], force=True)
    for parent in rt.cgroups._parent_dirs():
        with contextlib.suppress(OSError):
            remove_tree(parent)
