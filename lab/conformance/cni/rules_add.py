"""CNI rules: ADD — the result's shape per version, what it reports really exists, interface names."""

from __future__ import annotations

from typing import Any

from lab.conformance.cni.checks import expect_error, same_address, same_network
from lab.conformance.cni.context import Attachment, Context, names
from lab.conformance.cni.spec import cite, result_problems
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule

ADD = "§2 ADD"
ADD_ANCHOR = "add-add-container-to-network-or-apply-modifications"
SUCCESS = "§5 ADD Success"


def result_schema(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        problems = result_problems(a.add.output, ctx.version)
        if problems:
            raise Failed(
                "; ".join(problems[:6]) + (" …" if len(problems) > 6 else ""),
                f"an ADD result of spec {ctx.version}",
                a.add.describe(),
            )
    return Outcome.ok()


def interfaces_of(a: Attachment) -> list[dict[str, Any]]:
    items = a.result.get("interfaces")
    return [i if isinstance(i, dict) else {} for i in items] if isinstance(items, list) else []


def _container_interface(a: Attachment) -> dict[str, Any]:
    for item in interfaces_of(a):
        if item.get("name") == a.ifname:
            return item
    raise Failed(
        f"the result lists no interface named {a.ifname} (CNI_IFNAME)",
        f'interfaces: [{{"name": "{a.ifname}", "sandbox": "{a.netns}"}}]',
        a.add.describe(),
    )


def interface_in_result(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        item = _container_interface(a)
        if item.get("sandbox") != a.netns:
            raise Failed(
                f"interface {a.ifname} has sandbox {item.get('sandbox')!r}, not CNI_NETNS",
                f'"sandbox": "{a.netns}"',
                a.add.describe(),
            )
    return Outcome.ok()


def ip_interface_index(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        interfaces = interfaces_of(a)
        ips = [ip for ip in a.result.get("ips", []) if isinstance(ip, dict)]
        if not ips:
            raise CannotCheck("the result has no IPs")
        for i, ip in enumerate(ips):
            index = ip.get("interface")
            if not isinstance(index, int) or isinstance(index, bool):
                raise Failed(
                    f"ips[{i}] ({ip.get('address')}) has no interface index",
                    "every IP says which interface it is on",
                    a.add.describe(),
                )
            if not 0 <= index < len(interfaces):
                raise Failed(
                    f"ips[{i}].interface is {index}, but there are {len(interfaces)} interfaces",
                    f"an index below {len(interfaces)}",
                    a.add.describe(),
                )
        on_container = [ip for ip in ips if interfaces[ip["interface"]].get("name") == a.ifname]
        if not on_container:
            raise Failed(
                f"no IP points to the container's interface {a.ifname}",
                f"an IP with the index of {a.ifname}",
                a.add.describe(),
            )
    return Outcome.ok()


def interface_present(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        item = _container_interface(a)
        pod = ctx.kernel.links(a.netns)
        if a.ifname not in pod:
            raise Failed(
                f"{a.ifname} is not in the pod's namespace",
                f"{a.ifname} in {a.netns}",
                f"links there: {names(sorted(pod))}",
            )
        mac = str(item.get("mac", ""))
        if mac and mac.lower() != pod[a.ifname].mac.lower():
            raise Failed(f"{a.ifname} has MAC {pod[a.ifname].mac}, the result says {mac}", mac, pod[a.ifname].mac)
        host = ctx.kernel.links(None)
        for other in interfaces_of(a):
            name, sandbox = str(other.get("name", "")), other.get("sandbox")
            where, links = (a.netns, pod) if sandbox == a.netns else ("the host namespace", host)
            if sandbox and sandbox != a.netns:
                continue  # another sandbox: nothing the suite can look into
            if name not in links:
                raise Failed(
                    f"the result's interface {name} is not in {where}",
                    f"{name} in {where}",
                    f"links there: {names(sorted(links))}",
                )
    return Outcome.ok()


def addresses_present(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        interfaces = interfaces_of(a)
        pod = ctx.kernel.links(a.netns)
        checked = 0
        for ip in a.result.get("ips", []):
            index = ip.get("interface") if isinstance(ip, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(interfaces):
                continue
            target = interfaces[index]
            if target.get("sandbox") != a.netns:
                continue
            link = pod.get(str(target.get("name")))
            have = link.addresses if link else ()
            if not any(same_address(ip["address"], h) for h in have):
                raise Failed(
                    f"{ip['address']} is not on {target.get('name')} in the pod",
                    f"{ip['address']} on {target.get('name')}",
                    f"addresses: {names(have)}",
                )
            checked += 1
        if not checked:
            raise CannotCheck("the result assigns no IP to an interface in the pod")
    return Outcome.ok(f"{checked} address(es) present")


def routes_present(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        routes = [r for r in a.result.get("routes", []) if isinstance(r, dict)]
        if not routes:
            raise CannotCheck("the result lists no routes")
        table = ctx.kernel.routes(a.netns)
        for route in routes:
            dst, gw = str(route.get("dst", "")), str(route.get("gw", ""))
            found = [r for r in table if same_network(r.dst, dst) and (not gw or r.gateway == gw)]
            if not found:
                shown = "; ".join(f"{r.dst} via {r.gateway or '-'} dev {r.dev}" for r in table)
                raise Failed(
                    f"route {dst}{' via ' + gw if gw else ''} is not in the pod's table",
                    f"{dst}{' via ' + gw if gw else ''}",
                    shown or "no routes",
                )
    return Outcome.ok(f"{len(routes)} route(s) present")


def interface_exists(ctx: Context) -> Outcome:
    netns = ctx.kernel.new_pod()
    try:
        ctx.kernel.add_veth(netns, "eth0", "cfpeer0")
        before = ctx.held() if ctx.subject.probe else None
        if ctx.subject.prepare is not None:
            ctx.subject.prepare(ctx.kernel)
        cid = ctx.container_id()
        call = ctx.call("ADD", ctx.conf(), netns=netns, container_id=cid)
        try:
            described = expect_error(call)
            if before is not None:
                leaked = sorted(set(ctx.held()) - set(before))
                if leaked:
                    raise Failed(
                        f"the failed ADD left {names(leaked)} allocated",
                        "nothing allocated",
                        f"held now: {names(leaked)}",
                    )
        finally:
            ctx.call("DEL", ctx.conf(), netns=netns, container_id=cid)
    finally:
        ctx.kernel.remove_pod(netns)
    return Outcome.ok(described + ("" if before is not None else " (leaks not checked: no IPAM probe)"))


def second_add(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        before = ctx.held() if ctx.subject.probe else None
        was = ctx.kernel.links(a.netns).get(a.ifname)
        again = ctx.add(a.netns, a.container_id, a.ifname)
        described = expect_error(again)
        link = ctx.kernel.links(a.netns).get(a.ifname)
        if link is None:
            raise Failed(f"the second ADD removed the first attachment's {a.ifname}", f"{a.ifname} still there", "gone")
        lost = [cidr for cidr in (was.addresses if was else ()) if cidr not in link.addresses]
        if lost:
            raise Failed(
                f"the second ADD took {names(lost)} off {a.ifname}",
                names(was.addresses if was else ()),
                names(link.addresses),
            )
        if before is not None:
            now = ctx.held()
            lost = [ip for ip in a.ips() if ip in before and ip not in now]
            extra = sorted(set(now) - set(before))
            if lost or extra:
                raise Failed(
                    f"after the failed second ADD: released {names(lost)}, newly held {names(extra)}",
                    "the first attachment's IPs held, nothing more",
                    names(sorted(now)),
                )
    return Outcome.ok(described)


def ifname_max(ctx: Context) -> Outcome:
    name = "cfifname15chars"
    with ctx.attached(ifname=name) as a:
        if name not in ctx.kernel.links(a.netns):
            raise Failed(
                f"no interface {name} in the pod",
                f"{name} (15 bytes, the longest Linux allows)",
                names(sorted(ctx.kernel.links(a.netns))),
            )
    return Outcome.ok()


def ifname_invalid(ctx: Context) -> Outcome:
    out = []
    for name in ("cfifname16charsX", "eth/0"):
        netns = ctx.kernel.new_pod()
        try:
            before = ctx.held() if ctx.subject.probe else None
            if ctx.subject.prepare is not None:
                ctx.subject.prepare(ctx.kernel)
            cid = ctx.container_id()
            call = ctx.call("ADD", ctx.conf(), netns=netns, container_id=cid, ifname=name)
            try:
                out.append(f"{name!r}: {expect_error(call)}")
                if before is not None and set(ctx.held()) - set(before):
                    raise Failed(
                        f"ADD with CNI_IFNAME {name!r} failed but left an IP allocated",
                        "nothing allocated",
                        names(sorted(set(ctx.held()) - set(before))),
                    )
            finally:
                ctx.call("DEL", ctx.conf(), netns=netns, container_id=cid, ifname=name)
        finally:
            ctx.kernel.remove_pod(netns)
    return Outcome.ok("; ".join(out))


RULES: list[Rule[Context]] = [
    Rule("add.result-schema", "ADD's result has the shape of the version asked for",
         cite(SUCCESS, "add-success", "Plugins must output a JSON object with the following keys upon a successful `ADD` operation: `cniVersion`: The same version supplied on input"),
         result_schema, per_version=True),
    Rule("add.interface-in-result", "the result lists CNI_IFNAME with its sandbox",
         cite(SUCCESS, "add-success", "`sandbox` (string): … For interfaces created inside the container, this should be the value passed via `CNI_NETNS`."),
         interface_in_result),
    Rule("add.ip-interface-index", "every IP's interface index points to an interface of the result",
         cite(SUCCESS, "add-success", "`interface` (uint): the index into the `interfaces` list for a CNI Plugin Result indicating which interface this IP configuration should be applied to."),
         ip_interface_index),
    Rule("add.interface-present", "the interfaces of the result exist where the result says",
         cite(ADD, ADD_ANCHOR, "A CNI plugin, upon receiving an `ADD` command, should either create the interface defined by `CNI_IFNAME` inside the container at `CNI_NETNS`, or adjust the configuration"),
         interface_present),
    Rule("add.addresses-present", "the result's IPs are on the pod's interface",
         cite(SUCCESS, "add-success", "`ips`: IPs assigned by this attachment."), addresses_present),
    Rule("add.routes-present", "the result's routes are in the pod's table",
         cite(SUCCESS, "add-success", "`routes`: Routes created by this attachment"), routes_present),
    Rule("add.interface-exists", "ADD onto an existing CNI_IFNAME is an error and takes nothing",
         cite(ADD, ADD_ANCHOR, "If an interface of the requested name already exists in the container, the CNI plugin MUST return with an error."),
         interface_exists),
    Rule("add.second-same-id", "a second ADD of the same attachment fails and leaves the first intact",
         cite(ADD, ADD_ANCHOR, "A runtime should not call `ADD` twice (without an intervening DEL) for the same `(CNI_CONTAINERID, CNI_IFNAME)` tuple."),
         second_add),
    Rule("add.ifname-max", "a 15-byte CNI_IFNAME is used as given",
         cite("§2 Parameters", "parameters", "`CNI_IFNAME`: Name of the interface to create inside the container; if the plugin is unable to use this interface name it must return an error."),
         ifname_max),
    Rule("add.ifname-invalid", "a CNI_IFNAME Linux cannot take (16 bytes, '/') is an error that takes nothing",
         cite("§2 Parameters", "parameters", "`CNI_IFNAME`: Name of the interface to create inside the container; if the plugin is unable to use this interface name it must return an error."),
         ifname_invalid),
]  # fmt: skip
