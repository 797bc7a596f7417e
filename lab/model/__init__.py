"""Pure data of the lab: topology, files, variables, the cluster settings derived from a topology."""
