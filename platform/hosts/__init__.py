"""Hosts that run a Berth agent, each with its own Celery queue."""
