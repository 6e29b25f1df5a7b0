"""Registries: stored registry credentials and the image actions that use them (pull, push, build)."""
