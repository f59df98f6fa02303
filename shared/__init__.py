"""Integration Hub: the hub itself (domain, services, ports and their backends)."""
