"""Kernel plumbing: veth pairs, routes, sysctls, forwarding rules (pyroute2)."""
