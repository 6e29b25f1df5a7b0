"""Compliance models: runs and findings, exceptions, image inventories, advisories."""

from compliance.models.advisories import Advisory, AffectedPackage, ImageAdvisory, OsvImport
from compliance.models.findings import ComplianceException, ComplianceRun, Finding, TeamScore
from compliance.models.inventory import ImageInventory
from compliance.models.recipes import BuildRecipe
from compliance.models.rollouts import Rollout, RolloutSchedule

__all__ = [
    "AffectedPackage",
    "BuildRecipe",
    "Advisory",
    "ComplianceException",
    "ComplianceRun",
    "Finding",
    "ImageAdvisory",
    "ImageInventory",
    "OsvImport",
    "Rollout",
    "RolloutSchedule",
    "TeamScore",
]
