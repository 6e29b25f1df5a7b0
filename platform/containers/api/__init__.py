"""REST API of containers."""
