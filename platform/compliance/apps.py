"""Compliance: checks over containers, images and the site; inventories; advisories; rollouts."""

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    """The compliance app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "compliance"
