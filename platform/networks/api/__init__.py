"""REST API of networks."""
