"""Who may read /metrics: a bearer token whose user holds `metrics.read` globally, or a client
address inside BERTH_METRICS_ALLOW (CIDRs). Token decisions go through the gate and are
audited; a refusal of any kind is audited; an allowed address is not (it is a firewall rule,
and a scrape every 15 s would fill the audit log).
"""

import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from rest_framework import exceptions

from accounts.authentication import BearerTokenAuthentication
from rbac import gate
from rbac.grants import GLOBAL, grants_for

ACTION = "metrics.read"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Whether the scrape is answered; status and message when it is not."""

    allowed: bool
    status: int = 200
    message: str = ""


def allowed_networks() -> list:
    """BERTH_METRICS_ALLOW as networks; an entry that is not a CIDR or address is skipped."""
    raw = getattr(settings, "BERTH_METRICS_ALLOW", ()) or ()
    if isinstance(raw, str):
        raw = raw.split(",")
    networks = []
    for entry in raw:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            # Fail closed: a typo admits nobody rather than everybody.
            log.error("BERTH_METRICS_ALLOW: %r is not an address or CIDR; ignored", entry)
    return networks


def address_allowed(address: str) -> bool:
    """Whether the client address lies in one of the configured networks."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowed_networks())


def _refuse(status: int, reason: str, address: str, user=None) -> Verdict:
    decision = gate.Decision(False, reason, ACTION, user, None, "metrics")
    gate.record(decision, summary={"remote_addr": address[:64]})
    return Verdict(False, status, reason)


def check(request) -> Verdict:
    """Decide one scrape; every refusal (and every token decision) is audited."""
    address = request.META.get("REMOTE_ADDR", "") or ""
    if request.META.get("HTTP_AUTHORIZATION"):
        try:
            found = BearerTokenAuthentication().authenticate(request)
        except exceptions.AuthenticationFailed as err:
            return _refuse(401, f"metrics: {err.detail}", address)
        if found is None:
            return _refuse(
                401, "metrics: only 'Authorization: Bearer <token>' is accepted", address
            )
        user = found[0]
        decision = gate.decide(user, ACTION)
        if decision.allowed and not any(
            g.scope == GLOBAL and g.holds(ACTION) for g in grants_for(user)
        ):
            # Metrics show every team's containers: a team- or host-scoped grant is not enough.
            decision = gate.Decision(
                False, f"{ACTION} must be granted globally", ACTION, user, None, "metrics"
            )
        if not decision.allowed:
            return _refuse(403, decision.reason, address, user)
        gate.record(decision, summary={"remote_addr": address[:64]})
        return Verdict(True)
    if address_allowed(address):
        return Verdict(True)
    return _refuse(
        401, f"metrics: a bearer token is required from {address or 'this address'}", address
    )
