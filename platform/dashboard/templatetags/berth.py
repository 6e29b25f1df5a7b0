"""Template helpers of the dashboard: navigation, state badges, sizes."""

import functools

from django import template
from django.template.loader import render_to_string
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from dashboard.nav import visible_items

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_menu(context):
    """The side navigation of the signed-in user, the current entry marked."""
    request = context["request"]
    items = visible_items(request.user) if request.user.is_authenticated else []
    path = request.path
    shown = tuple((item["label"], item["url"], item["group"]) for item in items)
    active = tuple(path == url if url == "/" else path.startswith(url) for _, url, _ in shown)
    return _nav_html(shown, active)


@functools.lru_cache(maxsize=256)
def _nav_html(shown: tuple, active: tuple) -> str:
    """The menu's HTML, kept by everything it shows (the entries the gate allowed and which
    one is current): the same text only for the same entries, never stale."""
    items = [
        {"label": label, "url": url, "group": group, "active": on}
        for (label, url, group), on in zip(shown, active, strict=True)
    ]
    html = render_to_string("dashboard/_nav.html", {"items": items})
    return mark_safe(html)  # noqa: S308 (rendered by the template engine, escaped there)


@register.simple_tag
def state(value):
    """A coloured badge for a container, host or operation state."""
    value = value or "unknown"
    return format_html('<span class="state state-{}">{}</span>', value, value)


@register.filter
def filesize(num):
    """Bytes as KiB/MiB/GiB."""
    try:
        num = float(num)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return ""


@register.filter
def get(mapping, key):
    """mapping[key] in a template, or ''."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""


def host_status(host) -> tuple[str, str]:
    """(short state word, refusal reason or "") of a host for a picker."""
    from hosts import placement  # noqa: PLC0415  (hosts imports settings-dependent models)

    reason = placement.refusal(host)
    if not reason:
        return "up", ""
    if host.revoked_at is not None:
        return "removed", reason
    if host.state == "pending":
        return "not joined", reason
    if host.cordoned:
        return "cordoned", reason
    return "down", reason


@register.simple_tag
def host_options(hosts, selected=None):
    """<option>s of a host picker: each host's state shown, hosts that take nothing disabled,
    and the chosen (or else the first usable) host selected, never a dead one by default."""
    rows = [(h, *host_status(h)) for h in hosts]
    chosen = str(selected) if selected not in (None, "") else None
    if chosen is None or not any(str(h.id) == chosen and not why for h, _, why in rows):
        chosen = next((str(h.id) for h, _, why in rows if not why), None)
    return format_html_join(
        "",
        '<option value="{}" data-state="{}"{}{}>{} — {}</option>',
        (
            (
                h.id,
                word,
                mark_safe(" selected") if str(h.id) == chosen else "",
                mark_safe(f' disabled title="{escape(why)}"') if why else "",
                h.name,
                word,
            )
            for h, word, why in rows
        ),
    )


@register.filter
def ports_text(container) -> str:
    """Published ports of a container as Docker prints them: 0.0.0.0:8080->80/tcp, ..."""
    out = []
    for port in ((container.spec or {}).get("network") or {}).get("ports") or []:
        inner = f"{port.get('container_port')}/{port.get('protocol') or 'tcp'}"
        host = port.get("host_port")
        if host:
            end = port.get("host_port_end")
            out.append(
                f"{port.get('host_ip') or '0.0.0.0'}:{host}{f'-{end}' if end else ''}->{inner}"
            )
        else:
            out.append(inner)
    return ", ".join(out)


@register.filter
def network_text(container) -> str:
    """Mode, networks and address of a running container, from its spec and the agent's report."""
    net = (container.spec or {}).get("network") or {}
    info = container.network_info or {}
    mode = net.get("mode") or "bridge"
    names = ", ".join(net.get("networks") or []) or mode
    address = info.get("ip") or info.get("ip_address") or info.get("address") or ""
    return f"{names} {address}".strip()
