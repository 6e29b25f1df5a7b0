"""REST API of hosts."""
