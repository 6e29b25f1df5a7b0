"""Backups of a host's data (named volumes, containers' upper layers) through restic."""
