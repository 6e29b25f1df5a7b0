"""LDAP sign-in through ldap3: bind as Berth's service account, find the user, bind as the user,
read their groups, then apply the mappings.

Search-then-bind (as django-auth-ldap's AUTH_LDAP_USER_SEARCH does). ldap3 is used directly
rather than through django-python3-ldap, whose backend turns every failure into "no user": an
unreachable directory, a refused service account and a wrong password must each be told apart
(the first two are the operator's problem, and are said so on the login page).
"""

import contextlib
import ssl

import ldap3
from django.conf import settings
from django.core.exceptions import PermissionDenied
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from directory.models import LDAP, DirectoryIdentity
from directory.refusal import Refused, refuse
from directory.sync import sign_in, strip

UNREACHABLE = (
    "The directory server cannot be reached, so directory accounts cannot sign in right now. "
    "Local accounts still can."
)
MISCONFIGURED = (
    "Berth cannot search the directory (its service account was refused); tell an administrator."
)
DISABLED = "This directory account is disabled."
UNTRUSTED = "Berth could not verify the directory's TLS certificate; tell an administrator."

_NETWORK_ERRORS = (
    lx.LDAPSocketOpenError,
    lx.LDAPSocketReceiveError,
    lx.LDAPSocketSendError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPServerPoolExhaustedError,
    lx.LDAPStartTLSError,
    lx.LDAPResponseTimeoutError,
    lx.LDAPCommunicationError,
)


def _is_tls_failure(exc) -> bool:
    """StartTLS refused, or an ldaps:// handshake that failed on the certificate."""
    text = str(exc).lower()
    return isinstance(exc, lx.LDAPStartTLSError) or "certificate" in text or "ssl" in text


def config() -> dict:
    """settings.BERTH_LDAP (filled from BERTH_LDAP_* in the environment); {} when LDAP is off."""
    conf = getattr(settings, "BERTH_LDAP", None) or {}
    return conf if conf.get("URL") else {}


def _server(conf) -> ldap3.Server:
    tls = None
    if conf.get("URL", "").startswith("ldaps://") or conf.get("START_TLS"):
        tls = ldap3.Tls(ca_certs_file=conf.get("CA_FILE") or None, validate=ssl.CERT_REQUIRED)
    return ldap3.Server(
        conf["URL"], get_info=ldap3.NONE, connect_timeout=conf.get("TIMEOUT", 5), tls=tls
    )


def _connect(conf, server, user, password) -> ldap3.Connection:
    """A bound connection; raises ldap3's exceptions (raise_exceptions=True)."""
    conn = ldap3.Connection(
        server,
        user=user,
        password=password,
        raise_exceptions=True,
        receive_timeout=conf.get("TIMEOUT", 5),
        read_only=True,
    )
    try:
        conn.open()
        if conf.get("START_TLS"):
            conn.start_tls()
        conn.bind()
    except lx.LDAPException:
        # Close the socket whatever state the connection stopped in; the first error is the one
        # that explains what happened.
        with contextlib.suppress(lx.LDAPException, OSError):
            conn.unbind()
        raise
    return conn


def _first(entry, name) -> str:
    value = entry["attributes"].get(name) if name else None
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


class Directory:
    """One sign-in attempt against the configured directory."""

    def __init__(self, conf):
        self.conf = conf
        self.server = _server(conf)

    def service(self) -> ldap3.Connection:
        """Bound as Berth's service account (or anonymously when none is configured)."""
        try:
            return _connect(
                self.conf,
                self.server,
                self.conf.get("BIND_DN") or None,
                self.conf.get("BIND_PASSWORD") or None,
            )
        except lx.LDAPInvalidCredentialsResult:
            raise Refused(
                MISCONFIGURED, "ldap: service account bind refused (BERTH_LDAP_BIND_DN/PASSWORD)"
            ) from None

    def find_user(self, conn, username):
        """The user's entry (dn, attributes) by the user filter, or None; Refused when ambiguous."""
        attrs = [
            a
            for a in (
                self.conf.get("ATTR_USERNAME"),
                self.conf.get("ATTR_EMAIL"),
                self.conf.get("ATTR_FIRST_NAME"),
                self.conf.get("ATTR_LAST_NAME"),
            )
            if a
        ]
        try:
            conn.search(
                self.conf["USER_BASE"],
                self.conf["USER_FILTER"].format(username=escape_filter_chars(username)),
                search_scope=ldap3.SUBTREE,
                attributes=attrs,
                size_limit=2,
            )
            entries = [e for e in conn.response if e.get("type") == "searchResEntry"]
        except lx.LDAPSizeLimitExceededResult:
            entries = [None, None]  # more than one: the same refusal as two
        if len(entries) > 1:
            raise Refused(
                "This username matches several directory accounts; tell an administrator.",
                f"ldap: {len(entries)} entries match {username!r}",
            )
        return entries[0] if entries else None

    def is_disabled(self, conn, dn) -> bool:
        """Whether the entry matches the configured disabled filter."""
        flt = self.conf.get("DISABLED_FILTER")
        if not flt:
            return False
        conn.search(dn, flt, search_scope=ldap3.BASE, attributes=[])
        return any(e.get("type") == "searchResEntry" for e in conn.response)

    def groups(self, conn, dn, username) -> list[str]:
        """DNs and common names of the groups whose filter names the user."""
        base = self.conf.get("GROUP_BASE")
        if not base:
            return []
        conn.search(
            base,
            self.conf["GROUP_FILTER"].format(
                dn=escape_filter_chars(dn), username=escape_filter_chars(username)
            ),
            search_scope=ldap3.SUBTREE,
            attributes=["cn"],
        )
        out = []
        for entry in conn.response:
            if entry.get("type") == "searchResEntry":
                out.append(entry["dn"])
                out += [str(cn) for cn in entry["attributes"].get("cn") or []]
        return out

    def authenticate(self, username, password):
        """The signed-in Berth user, None for an unknown user or a wrong password; Refused else."""
        service = self.service()
        try:
            entry = self.find_user(service, username)
            if entry is None:
                return None
            dn = entry["dn"]
            try:
                # The user's own bind proves the password; its connection is closed at once.
                _connect(self.conf, self.server, dn, password).unbind()
            except lx.LDAPInvalidCredentialsResult:
                return None
            if self.is_disabled(service, dn):
                # A Berth user of this entry keeps nothing sign-in gave it (its API tokens
                # would otherwise still carry the mapped roles).
                identity = DirectoryIdentity.objects.filter(source=LDAP, subject=dn).first()
                if identity is not None:
                    strip(identity.user, LDAP, "disabled in the directory")
                raise Refused(DISABLED, f"ldap: {dn} is disabled in the directory")
            groups = self.groups(service, dn, username)
        finally:
            service.unbind()
        profile = {
            "email": _first(entry, self.conf.get("ATTR_EMAIL")),
            "first_name": _first(entry, self.conf.get("ATTR_FIRST_NAME")),
            "last_name": _first(entry, self.conf.get("ATTR_LAST_NAME")),
        }
        name = _first(entry, self.conf.get("ATTR_USERNAME")) or username
        return sign_in(source=LDAP, subject=dn, username=name, profile=profile, groups=groups)


class LDAPBackend:
    """Django authentication backend for directory accounts; local accounts use ModelBackend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        conf = config()
        # An empty password is an anonymous bind to LDAP, which "succeeds": never accept one.
        if not conf or not username or not password:
            return None
        try:
            user = Directory(conf).authenticate(username, password)
        except Refused as refusal:
            refuse(request, source=LDAP, username=username, refusal=refusal)
            raise PermissionDenied(refusal.message) from None
        except _NETWORK_ERRORS as exc:
            if _is_tls_failure(exc):
                refusal = Refused(
                    UNTRUSTED, f"ldap: TLS certificate not verified ({type(exc).__name__})"
                )
                refuse(request, source=LDAP, username=username, refusal=refusal)
                raise PermissionDenied(UNTRUSTED) from None
            refuse(
                request,
                source=LDAP,
                username=username,
                refusal=Refused(UNREACHABLE, f"ldap: directory unreachable ({type(exc).__name__})"),
            )
            raise PermissionDenied(UNREACHABLE) from None
        except lx.LDAPException as exc:
            refusal = Refused(
                "The directory answered with an error; tell an administrator.",
                f"ldap: {type(exc).__name__}",
            )
            refuse(request, source=LDAP, username=username, refusal=refusal)
            raise PermissionDenied(refusal.message) from None
        # The login view audits the sign-in itself; directory.sync records what the groups gave.
        return user

    def get_user(self, user_id):
        from django.contrib.auth import get_user_model

        user = get_user_model()._default_manager.filter(pk=user_id).first()
        return user if user is not None and user.is_active else None
