"""Network policy: Cilium-like rules (model), where they are kept (repository), and
how they become allow entries for the datapath's policy map (compile)."""
