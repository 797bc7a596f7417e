"""aiohttp, imported without the CA bundle its client parses at import time.

Importing aiohttp imports its client too, and aiohttp.connector builds its two default TLS client
contexts right then (`ssl.create_default_context()` and an unverified one): each parses the
system's CA bundle, ~50 ms apiece, a third of importing aiohttp. podnet's daemons only serve
on unix sockets with it and never open an HTTPS connection through aiohttp (the etcd store speaks
plain HTTP through requests, which loads its own bundle when it needs one).

`import_aiohttp()`, called before anything else imports aiohttp, points OpenSSL's default CA
locations (SSL_CERT_FILE, SSL_CERT_DIR) at nothing while aiohttp is imported, and restores them
right after. Those two contexts then trust no CA: an HTTPS request through aiohttp's defaults in
such a process would fail verification (it fails closed); nothing else changes. Call it while
the process has one thread (the environment is the C library's, shared with every thread).
"""

from __future__ import annotations

import os
import sys

CA_LOCATIONS = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def import_aiohttp() -> None:
    """Import aiohttp.web (and so aiohttp's client) without loading the CA bundle; a no-op once
    anything imported aiohttp."""
    if "aiohttp" in sys.modules:
        return
    saved = {name: os.environ.get(name) for name in CA_LOCATIONS}
    os.environ.update(dict.fromkeys(CA_LOCATIONS, os.devnull))
    try:
        import aiohttp.web  # noqa: F401
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
