"""A throwaway OpenLDAP directory: Debian's slapd on a loopback port, its own config and data
under a temporary directory, stopped by its PID."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import ldap3

from tests.sso.sso_helpers import stop_process

SUFFIX = "dc=berth,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "ts-root-password"
SERVICE_DN = f"cn=berth-svc,{SUFFIX}"
SERVICE_PASSWORD = "ts-service-password"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SLAPD = "/usr/sbin/slapd"

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {root}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {root}/data
{tls}
# Passwords are for binding only; the service account reads the rest, anonymous nothing.
access to attrs=userPassword by anonymous auth by self auth by * none
access to * by users read by * none
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def person(uid: str, password: str, *, disabled: bool = False) -> str:
    lines = [
        f"dn: uid={uid},{PEOPLE}",
        "objectClass: inetOrgPerson",
        f"uid: {uid}",
        f"cn: {uid.title()} Test",
        f"givenName: {uid.title()}",
        "sn: Test",
        f"mail: {uid}@berth.test",
        f"userPassword: {password}",
    ]
    if disabled:
        lines.append("employeeType: disabled")
    return "\n".join(lines) + "\n"


def group(cn: str, members: list[str]) -> str:
    lines = [f"dn: cn={cn},{GROUPS}", "objectClass: groupOfNames", f"cn: {cn}"]
    lines += [f"member: uid={m},{PEOPLE}" for m in members]
    return "\n".join(lines) + "\n"


def make_certificates(root: Path) -> None:
    """A throwaway CA (ca.pem) and a server certificate for 127.0.0.1 signed by it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-ts test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "server.pem").write_bytes(cert.public_bytes(pem))
    (root / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class Slapd:
    """One slapd process; `people` {uid: (password, disabled)}, `groups` {cn: [uids]}."""

    def __init__(self, people: dict, groups: dict, *, tls: bool = False):
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix="berth-ts-slapd-"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.proc = None
        self.people, self.groups = people, groups

    def _ldif(self) -> str:
        parts = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: berth\no: Berth test\n",
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
            f"cn: berth-svc\nuserPassword: {SERVICE_PASSWORD}\n",
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
            f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        ]
        parts += [person(uid, pw, disabled=off) for uid, (pw, off) in self.people.items()]
        parts += [group(cn, members) for cn, members in self.groups.items()]
        return "\n".join(parts)

    def start(self) -> "Slapd":
        (self.root / "data").mkdir()
        conf = self.root / "slapd.conf"
        tls = ""
        if self.tls:
            make_certificates(self.root)
            tls = (
                f"TLSCACertificateFile {self.root}/ca.pem\n"
                f"TLSCertificateFile {self.root}/server.pem\n"
                f"TLSCertificateKeyFile {self.root}/server.key"
            )
        conf.write_text(
            CONFIG.format(
                root=self.root, suffix=SUFFIX, rootdn=ROOT_DN, rootpw=ROOT_PASSWORD, tls=tls
            )
        )
        (self.root / "data.ldif").write_text(self._ldif())
        subprocess.run(
            ["/usr/sbin/slapadd", "-f", str(conf), "-l", str(self.root / "data.ldif")],
            check=True,
            capture_output=True,
        )
        self.log = open(self.root / "slapd.log", "wb")  # noqa: SIM115 (closed in stop())
        # -d keeps slapd in the foreground, so the PID we hold is slapd's own.
        self.proc = subprocess.Popen(
            [SLAPD, "-h", f"{self.url}/", "-f", str(conf), "-d", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "slapd.log").read_text()[-2000:])
            try:
                self.admin().unbind()
                return self
            except ldap3.core.exceptions.LDAPException:
                time.sleep(0.1)
        raise RuntimeError("slapd did not answer")

    def admin(self) -> ldap3.Connection:
        """A connection bound as the directory's root DN (to change users and groups)."""
        return ldap3.Connection(
            ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=2),
            ROOT_DN,
            ROOT_PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
        )

    def set_members(self, cn: str, uids: list[str]) -> None:
        """Replace a group's members (groupOfNames needs at least one: the service account)."""
        members = [f"uid={u},{PEOPLE}" for u in uids] or [SERVICE_DN]
        conn = self.admin()
        conn.modify(f"cn={cn},{GROUPS}", {"member": [(ldap3.MODIFY_REPLACE, members)]})
        conn.unbind()

    def stop(self) -> None:
        """Stop slapd by its PID and remove its directory."""
        stop_process(self.proc, getattr(self, "log", None))
        shutil.rmtree(self.root, ignore_errors=True)

    def settings(self, **overrides) -> dict:
        """A BERTH_LDAP dictionary for this directory."""
        conf = {
            "URL": self.url,
            "START_TLS": False,
            "CA_FILE": "",
            "BIND_DN": SERVICE_DN,
            "BIND_PASSWORD": SERVICE_PASSWORD,
            "USER_BASE": PEOPLE,
            "USER_FILTER": "(&(objectClass=inetOrgPerson)(uid={username}))",
            "DISABLED_FILTER": "(employeeType=disabled)",
            "GROUP_BASE": GROUPS,
            "GROUP_FILTER": "(&(objectClass=groupOfNames)(member={dn}))",
            "ATTR_USERNAME": "uid",
            "ATTR_EMAIL": "mail",
            "ATTR_FIRST_NAME": "givenName",
            "ATTR_LAST_NAME": "sn",
            "TIMEOUT": 3,
        }
        return conf | overrides
