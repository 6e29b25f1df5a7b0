"""Roles, role bindings and the single authorization gate."""
