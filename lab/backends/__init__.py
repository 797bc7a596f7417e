"""Backends: where a lab's nodes live. `registry` names them; each is one folder."""
