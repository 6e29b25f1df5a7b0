"""Shared REST plumbing: error format, pagination, base viewset that calls the gate, URLs."""
