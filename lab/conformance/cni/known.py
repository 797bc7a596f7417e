"""What the reference plugins (Debian containernetworking-plugins 1.1.1, built on libcni 1.1.2) are
known to fail, and why: each a real deviation from the spec (none here is a version they do not
claim: rules of versions a plugin does not list are n/a, not failures). A failure listed here is
reported as explained; one that is not fails the run, and so does an entry whose rule now passes."""

from __future__ import annotations

SKEL_ABOUT = (
    "real deviation: libcni's skel (pkg/skel, pluginMain) prints the plugin's 'about' text on stderr and "
    "exits 0 when CNI_COMMAND is unset, a convenience for people running the binary by hand; the spec "
    "wants error 4 naming the variable"
)
NO_PREV_RESULT = (
    "real deviation: the interface plugins build a fresh result on ADD and read prevResult only in "
    "cmdCheck (plugins v1.1.1, and still so upstream), so as a later plugin of a chain they drop what "
    "the plugins before them returned"
)
ERROR_VERSION = (
    "real deviation (of a 'should'): libcni's types.Error (1.1.2) has no cniVersion field, so every "
    "error is printed as {code, msg, details} without the protocol version"
)
HOST_DEVICE_DEL = (
    "real deviation: host-device's cmdDel moves the device back out of the pod and fails when it cannot "
    "('failed to find \"eth0\": Link not found' once it is gone, 'failed to open netns' when the namespace "
    "is), so DEL is neither idempotent nor best-effort (plugins v1.1.1; cmdDel unchanged upstream)"
)

_COMMON = {
    "env.command-missing": SKEL_ABOUT,
    "chain.prev-result-kept": NO_PREV_RESULT,
    "error.cniversion": ERROR_VERSION,
}

KNOWN: dict[str, dict[str, str]] = {
    "bridge": dict(_COMMON),
    "ptp": dict(_COMMON),
    "macvlan": dict(_COMMON),
    "host-device": {
        **_COMMON,
        "del.idempotent": HOST_DEVICE_DEL,
        "del.netns-gone": HOST_DEVICE_DEL,
        "del.never-added": HOST_DEVICE_DEL,
    },
}
