"""Images known on each host."""
