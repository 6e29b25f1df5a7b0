"""Compliance models: runs and findings, exceptions, image inventories, advisories."""

from compliance.models.findings import ComplianceException, ComplianceRun, Finding, TeamScore

__all__ = ["ComplianceException", "ComplianceRun", "Finding", "TeamScore"]
