"""podnet: a Cilium-style container networking stack."""

__version__ = "0.1.0"
