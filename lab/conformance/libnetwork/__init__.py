"""The libnetwork suite: a real dockerd drives the plugin through docker CLI flows, and the suite
speaks the remote driver protocol itself where dockerd hides a reply."""
