"""Template helpers of the dashboard: navigation, state badges, sizes."""

from django import template
from django.utils.html import format_html

from dashboard.nav import visible_items

register = template.Library()


@register.inclusion_tag("dashboard/_nav.html", takes_context=True)
def nav_menu(context):
    """The side navigation of the signed-in user, the current entry marked."""
    request = context["request"]
    items = visible_items(request.user) if request.user.is_authenticated else []
    path = request.path
    for item in items:
        item["active"] = path == item["url"] if item["url"] == "/" else path.startswith(item["url"])
    return {"items": items}


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
