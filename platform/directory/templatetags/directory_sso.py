"""`{% oidc_login_label as label %}`: the SSO button's label on the login page, "" when off."""

from django import template

from directory import oidc

register = template.Library()


@register.simple_tag
def oidc_login_label() -> str:
    """The configured label when OIDC sign-in is on, else an empty string."""
    conf = oidc.config()
    return (conf.get("LABEL") or "Sign in with SSO") if conf else ""
