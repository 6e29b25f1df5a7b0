"""Berth's container runtime: namespaces, cgroups, overlay images and a monitor per container.

A plain Python package that never imports Django; usable on its own as `python -m runtime`.
"""
