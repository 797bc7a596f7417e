"""podnet-docker: the libnetwork remote NetworkDriver + IpamDriver."""
