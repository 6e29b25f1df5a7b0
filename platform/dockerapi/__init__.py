"""The Docker Engine API (versions 1.41 to 1.47) served by Berth behind the gate (docs/docker-api.md)."""
