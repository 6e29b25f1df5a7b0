"""Data moved between hosts through the control plane (volume archives when a host is drained)."""
