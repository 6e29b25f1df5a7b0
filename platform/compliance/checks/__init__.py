"""The compliance checks, declared once: id, title, severity, CIS reference, remediation, test.

Container and image checks are plain functions over dicts (the stored spec, the image config),
so a pass over hundreds of containers costs a few milliseconds and never touches a host.
"""

from compliance.checks.registry import CHECKS, Check, by_id, for_target

__all__ = ["CHECKS", "Check", "by_id", "for_target"]
