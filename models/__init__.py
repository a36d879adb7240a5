"""Models this stack serves in tests, made locally (no hub is reachable)."""
