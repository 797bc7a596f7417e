"""Entry points of podnet's processes; each is a thin adapter over the packages."""
