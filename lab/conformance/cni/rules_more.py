"""CNI rules: GC and STATUS (1.1), and concurrent ADDs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from lab.conformance.cni.checks import bare, expect_error, expect_ok
from lab.conformance.cni.context import Attachment, Call, Context, names
from lab.conformance.cni.spec import NOT_AVAILABLE, cite, result_problems
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule

GC = "§2 GC"
GC_ANCHOR = "gc-clean-up-any-stale-resources"
STATUS = "§2 STATUS"
STATUS_ANCHOR = "status-check-plugin-status"
CONCURRENT = 6


def _gc(ctx: Context, keep: Attachment) -> Call:
    conf = ctx.conf()
    conf["cni.dev/valid-attachments"] = [{"containerID": keep.container_id, "ifname": keep.ifname}]
    env = {"CNI_COMMAND": "GC", "CNI_PATH": ":".join(ctx.subject.cni_path)}
    return ctx.run({k: v for k, v in env.items() if v}, json.dumps(conf))


def gc_removes_stale(ctx: Context) -> Outcome:
    if ctx.subject.max_attachments == 1:
        raise CannotCheck("the plugin holds one attachment at a time: GC needs a valid and a stale one")
    with ctx.attached() as keep, ctx.attached() as stale:
        if not set(stale.ips()) <= set(ctx.held()):
            raise CannotCheck(f"the probe does not show {names(stale.ips())} as held after ADD")
        expect_ok(_gc(ctx, keep), "GC")
        left = [ip for ip in stale.ips() if ip in ctx.held()]
        if left:
            raise Failed(
                f"GC left the stale attachment's {names(left)} allocated",
                f"{names(stale.ips())} released ({stale.container_id} is not in cni.dev/valid-attachments)",
                f"still held: {names(left)}",
            )
    return Outcome.ok(f"released {names(stale.ips())}")


def gc_keeps_valid(ctx: Context) -> Outcome:
    if ctx.subject.max_attachments == 1:
        raise CannotCheck("the plugin holds one attachment at a time: GC needs a valid and a stale one")
    with ctx.attached() as keep, ctx.attached():
        was = ctx.kernel.links(keep.netns).get(keep.ifname)
        expect_ok(_gc(ctx, keep), "GC")
        link = ctx.kernel.links(keep.netns).get(keep.ifname)
        if link is None:
            raise Failed(f"GC removed {keep.ifname} of a valid attachment", f"{keep.ifname} kept", "gone")
        lost = [cidr for cidr in (was.addresses if was else ()) if cidr not in link.addresses]
        if lost:
            raise Failed(f"GC took {names(lost)} off a valid attachment", names(lost), names(link.addresses))
        if ctx.subject.probe is not None:
            lost = [ip for ip in keep.ips() if ip not in ctx.held()]
            if lost:
                raise Failed(f"GC released the valid attachment's {names(lost)}", "kept", f"released: {names(lost)}")
    return Outcome.ok()


def _status(ctx: Context) -> Call:
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": ":".join(ctx.subject.cni_path)}
    return ctx.run({k: v for k, v in env.items() if v}, json.dumps(ctx.conf()))


def status_ready(ctx: Context) -> Outcome:
    call = _status(ctx)
    expect_ok(call, "STATUS of a plugin ready to serve ADD")
    return Outcome.ok()


def status_unavailable(ctx: Context) -> Outcome:
    if ctx.subject.unavailable is None:
        raise CannotCheck("the suite knows no way to make this plugin unable to serve ADD")
    with ctx.subject.unavailable():
        call = _status(ctx)
        described = expect_error(call)
        if call.code not in (NOT_AVAILABLE, NOT_AVAILABLE + 1):
            raise Failed(f"STATUS failed with code {call.code}", "code 50 (or 51)", call.describe())
    return Outcome.ok(described)


def concurrent(ctx: Context) -> Outcome:
    if ctx.subject.prepare is not None:
        ctx.subject.prepare(ctx.kernel)
    pods = [(ctx.kernel.new_pod(), ctx.container_id()) for _ in range(CONCURRENT)]
    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            calls = list(pool.map(lambda p: ctx.call("ADD", ctx.conf(), netns=p[0], container_id=p[1]), pods))
        for call in calls:
            if call.status < 0:
                raise Failed("a concurrent ADD did not answer", "every call answered", call.describe())
            if not call.ok:
                expect_error(call)
            elif result_problems(call.output, ctx.version):
                raise Failed("a concurrent ADD answered a malformed result", "a result", call.describe())
        done = [c for c in calls if c.ok]
        ips = [bare(str(ip.get("address", ""))) for c in done for ip in c.output.get("ips", []) if isinstance(ip, dict)]
        duplicates = sorted({ip for ip in ips if ips.count(ip) > 1})
        if duplicates:
            raise Failed(f"concurrent ADDs handed out {names(duplicates)} twice", "distinct IPs", names(ips))
        want = min(CONCURRENT, ctx.subject.max_attachments or CONCURRENT)
        if len(done) < want:
            failed = next(c for c in calls if not c.ok)
            raise Failed(
                f"{CONCURRENT - len(done)} of {CONCURRENT} concurrent ADDs failed", f"{want} succeed", failed.describe()
            )
    finally:
        for netns, cid in pods:
            ctx.call("DEL", ctx.conf(), netns=netns, container_id=cid)
            ctx.kernel.remove_pod(netns)
    return Outcome.ok(f"{len(done)} answered with distinct IPs {names(ips)}")


RULES: list[Rule[Context]] = [
    Rule("add.concurrent", f"{CONCURRENT} concurrent ADDs: every call answered, no IP twice",
         cite("§3 Lifecycle & Ordering", "lifecycle--ordering", "Plugins must handle being executed concurrently across different containers. If necessary, they must implement locking on shared resources (e.g. IPAM databases)."),
         concurrent),
    Rule("gc.removes-stale", "GC releases what attachments not listed as valid held",
         cite(GC, GC_ANCHOR, "a plugin should remove any IPAM reservations associated with attachments not in the provided list."),
         gc_removes_stale, since="1.1.0"),
    Rule("gc.keeps-valid", "GC keeps the attachments listed in cni.dev/valid-attachments",
         cite(GC, GC_ANCHOR, "`cni.dev/valid-attachments` (array of objects): The list of **still valid** attachments to this network"),
         gc_keeps_valid, since="1.1.0"),
    Rule("status.ready", "STATUS succeeds while the plugin can serve ADD",
         cite(STATUS, STATUS_ANCHOR, "A plugin must exit with a zero (success) return code if the plugin is ready to service ADD requests."),
         status_ready, since="1.1.0"),
    Rule("status.unavailable", "STATUS is error 50 when the plugin cannot serve ADD",
         cite(STATUS, STATUS_ANCHOR, "If the plugin knows that it is not able to service ADD requests, it must exit with a non-zero return code and output an error on standard out"),
         status_unavailable, since="1.1.0"),
]  # fmt: skip
