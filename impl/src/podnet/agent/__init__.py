"""podnet-agent: the per-node daemon (IPAM, endpoints, datapath, REST API)."""
