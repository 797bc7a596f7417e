"""CNI rules: DEL (idempotent, without a netns, never added, releases what ADD took) and CHECK."""

from __future__ import annotations

from lab.conformance.cni.checks import bare, expect_error, expect_ok
from lab.conformance.cni.context import Context, names
from lab.conformance.cni.spec import cite
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule

DEL = "§2 DEL"
DEL_ANCHOR = "del-remove-container-from-network-or-un-apply-modifications"
CHECK = "§2 CHECK"
CHECK_ANCHOR = "check-check-containers-networking-is-as-expected"


def idempotent(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        expect_ok(ctx.delete(a), "the first DEL")
        expect_ok(ctx.delete(a), "a second DEL of the same attachment")
    return Outcome.ok()


def netns_gone(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        held = set(ctx.held()) if ctx.subject.probe else None
        ctx.kernel.remove_pod(a.netns)
        expect_ok(ctx.delete(a), "DEL after the pod's namespace was removed")
        if held is not None:
            left = [ip for ip in a.ips() if ip in held and ip in ctx.held()]
            if left:
                raise Failed(
                    f"DEL without the namespace left {names(left)} allocated",
                    "the attachment's IPs released",
                    f"still held: {names(left)}",
                )
    return Outcome.ok("" if held is not None else "released IPs not checked: no IPAM probe")


def never_added(ctx: Context) -> Outcome:
    netns = ctx.kernel.new_pod()
    try:
        expect_ok(
            ctx.call("DEL", ctx.conf(), netns=netns, container_id=ctx.container_id()),
            "DEL of an attachment never added",
        )
        expect_ok(
            ctx.call("DEL", ctx.conf(), container_id=ctx.container_id()),
            "DEL of an attachment never added, without CNI_NETNS",
        )
    finally:
        ctx.kernel.remove_pod(netns)
    return Outcome.ok()


def without_prev_result(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        expect_ok(ctx.delete(a, prev=False), "DEL without prevResult")
    return Outcome.ok()


def releases(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        ips = a.ips()
        before = ctx.held()
        missing = [ip for ip in ips if ip not in before]
        if missing:
            raise CannotCheck(
                f"{ctx.subject.probe.what if ctx.subject.probe else 'the probe'} does not show "
                f"{names(missing)} as held after ADD"
            )
        expect_ok(ctx.delete(a), "DEL")
        left = [ip for ip in ips if ip in ctx.held()]
        if left:
            now = ctx.held()
            raise Failed(
                f"DEL left {names(left)} allocated",
                "every IP of the attachment released",
                "still held: " + ", ".join(f"{ip} ({now.get(ip, '')})" for ip in left),
            )
    return Outcome.ok(f"released {names(ips)}")


def removes_interface(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        expect_ok(ctx.delete(a), "DEL")
        if a.ifname in ctx.kernel.links(a.netns):
            raise Failed(f"{a.ifname} is still in the pod after DEL", f"no {a.ifname}", f"{a.ifname} present")
    return Outcome.ok()


def check_after_add(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        call = ctx.check(a)
        expect_ok(call, "CHECK right after ADD")
        if call.stdout.strip():
            raise Failed("CHECK printed something on success", "nothing on stdout", call.describe())
    return Outcome.ok()


def check_interface_gone(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        ctx.kernel.delete_link(a.netns, a.ifname)
        return Outcome.ok(expect_error(ctx.check(a), names=[a.ifname]))


def check_address_gone(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        link = ctx.kernel.links(a.netns).get(a.ifname)
        addresses = [ip["address"] for ip in a.result.get("ips", []) if isinstance(ip, dict) and "address" in ip]
        on_link = [c for c in link.addresses if bare(c) in {bare(x) for x in addresses}] if link else []
        if not on_link:
            raise CannotCheck(f"{a.ifname} carries none of the result's addresses to remove")
        ctx.kernel.delete_address(a.netns, a.ifname, on_link[0])
        call = ctx.check(a)
        described = expect_error(call)
        if bare(on_link[0]) not in call.text:
            raise Failed(
                f"CHECK failed but does not name the missing address {bare(on_link[0])}",
                f"an error naming {bare(on_link[0])}",
                call.describe(),
            )
        return Outcome.ok(described)


def check_no_prev_result(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        return Outcome.ok(expect_error(ctx.check(a, prev=False)))


RULES: list[Rule[Context]] = [
    Rule("del.idempotent", "DEL twice succeeds twice",
         cite(DEL, DEL_ANCHOR, "Plugins MUST accept multiple `DEL` calls for the same (`CNI_CONTAINERID`, `CNI_IFNAME`) pair, and return success if the interface in question, or any modifications added, are missing."),
         idempotent),
    Rule("del.netns-gone", "DEL succeeds, and releases the IPs, when the pod's namespace is gone",
         cite(DEL, DEL_ANCHOR, "an IPAM plugin should generally release an IP allocation and return success even if the container network namespace no longer exists"),
         netns_gone),
    Rule("del.never-added", "DEL of an attachment never added succeeds (with or without CNI_NETNS)",
         cite(DEL, DEL_ANCHOR, "plugins should always complete a `DEL` action without error to the fullest extent possible, even if some resources or state are missing"),
         never_added),
    Rule("del.without-prev-result", "DEL without prevResult succeeds",
         cite(DEL, DEL_ANCHOR, "Plugins should still return without error if `prevResult` is empty for a `DEL` command, however."),
         without_prev_result, since="0.4.0"),
    Rule("del.releases", "DEL releases every IP ADD took",
         cite("§3 Lifecycle & Ordering; §2 DEL", DEL_ANCHOR, "A CNI plugin, upon receiving a `DEL` command, should either delete the interface … or undo any modifications applied in the plugin's `ADD` functionality"),
         releases),
    Rule("del.removes-interface", "after DEL, CNI_IFNAME is gone from the pod",
         cite(DEL, DEL_ANCHOR, "A CNI plugin, upon receiving a `DEL` command, should either delete the interface defined by `CNI_IFNAME` inside the container at `CNI_NETNS`, or undo any modifications"),
         removes_interface),
    Rule("check.after-add", "CHECK right after ADD succeeds and prints nothing",
         cite(CHECK, CHECK_ANCHOR, "The plugin must handle `CHECK` being called immediately after an `ADD`"),
         check_after_add, since="0.4.0"),
    Rule("check.interface-gone", "CHECK fails, naming it, when CNI_IFNAME was removed",
         cite(CHECK, CHECK_ANCHOR, "The plugin should return an error if a resource included in the CNI Result type (interface, address or route) was created by the plugin, and is listed in `prevResult`, but is missing or in an invalid state."),
         check_interface_gone, since="0.4.0"),
    Rule("check.address-gone", "CHECK fails, naming it, when the result's address was removed",
         cite(CHECK, CHECK_ANCHOR, "The plugin should return an error if a resource included in the CNI Result type (interface, address or route) was created by the plugin, and is listed in `prevResult`, but is missing or in an invalid state."),
         check_address_gone, since="0.4.0"),
    Rule("check.no-prev-result", "CHECK without prevResult is an error",
         cite(CHECK, CHECK_ANCHOR, "The plugin must consult the `prevResult` to determine the expected interfaces and addresses."),
         check_no_prev_result, since="0.4.0"),
]  # fmt: skip
