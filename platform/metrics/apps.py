"""Prometheus metrics at /metrics (issue 15)."""

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Counts requests and gate decisions in-process; the rest is read at scrape time."""

    name = "metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit.models import AuditEvent
        from audit.signals import recorded
        from metrics import instruments

        # Every gate decision is written as one audit event: count them as they are recorded.
        recorded.connect(
            instruments.count_audit_event, sender=AuditEvent, dispatch_uid="metrics-gate"
        )
