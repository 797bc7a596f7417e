"""BGP: announce this node's pod CIDR to the top-of-rack router (a bird2 speaker run by the agent)."""
