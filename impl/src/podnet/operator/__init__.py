"""podnet-operator: cluster-pool IPAM across nodes (Cilium's operator in cluster-pool mode)."""
