"""REST API of rbac."""
