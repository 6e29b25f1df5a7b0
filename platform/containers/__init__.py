"""Containers: models, the dangerous-option policy, services and API."""
