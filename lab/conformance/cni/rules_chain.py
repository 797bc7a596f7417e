"""CNI rules: chains — the plugin before `tuning`, and after another plugin (its prevResult kept)."""

from __future__ import annotations

import json
from typing import Any

from lab.conformance.cni.checks import bare
from lab.conformance.cni.context import Context, names
from lab.conformance.cni.rules_add import SUCCESS, interfaces_of
from lab.conformance.cni.spec import at_least, cite
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule


def _version_of(ctx: Context, plugin: str) -> list[str]:
    call = ctx.run({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": ctx.version}), plugin=plugin)
    listed = call.output.get("supportedVersions") if isinstance(call.output, dict) else None
    return [str(v) for v in listed] if isinstance(listed, list) else []


CHAIN_MAC = "02:42:c0:ff:ee:01"  # what the chained plugin changes: the container interface's MAC


def chain_consumed(ctx: Context) -> Outcome:
    """As a runtime runs a conflist [subject, tuning]: tuning takes the subject's result and changes the
    interface's MAC; the subject then gets the chain's final result in CHECK and DEL."""
    chained = ctx.subject.chain
    name = chained.rsplit("/", 1)[-1]
    if ctx.version not in _version_of(ctx, chained):
        raise CannotCheck(f"{name} ({chained}) does not claim {ctx.version}")
    with ctx.attached() as a:
        conf = {
            "cniVersion": ctx.version,
            "name": ctx.conf()["name"],
            "type": name,
            "mac": CHAIN_MAC,
            **ctx.subject.chain_conf,
            "prevResult": a.result,
        }
        call = ctx.call("ADD", conf, netns=a.netns, container_id=a.container_id, ifname=a.ifname, plugin=chained)
        final = call.output if call.ok and isinstance(call.output, dict) else a.result
        try:
            if not call.ok:
                raise Failed(
                    f"{name}, chained after it, refused its result", "the chain's ADD succeeds", call.describe()
                )
            kept = {bare(str(ip.get("address", ""))) for ip in final.get("ips", []) if isinstance(ip, dict)}
            if not set(a.ips()) <= kept:
                raise Failed(
                    f"the chain's result lost {names(sorted(set(a.ips()) - kept))}", names(a.ips()), call.describe()
                )
            if at_least(ctx.version, "0.4.0"):
                check = ctx.call(
                    "CHECK", ctx.conf(prevResult=final), netns=a.netns, container_id=a.container_id, ifname=a.ifname
                )
                if not check.ok:
                    raise Failed(
                        f"CHECK with the chain's final result (after {name} changed the MAC) failed",
                        "CHECK accepts what a later plugin changed",
                        check.describe(),
                    )
        finally:
            ctx.call(
                "DEL",
                {**conf, "prevResult": final},
                netns=a.netns,
                container_id=a.container_id,
                ifname=a.ifname,
                plugin=chained,
            )
        if at_least(ctx.version, "0.4.0"):  # before 0.4.0 DEL carries no prevResult: nothing of the chain's
            done = ctx.call(
                "DEL", ctx.conf(prevResult=final), netns=a.netns, container_id=a.container_id, ifname=a.ifname
            )
            if not done.ok:
                raise Failed("DEL with the chain's final result failed", "DEL exits 0", done.describe())
    return Outcome.ok(f"{name} took its result; CHECK and DEL took the chain's")


def previous_result(version: str) -> dict[str, Any]:
    """What a plugin before this one in a chain returned: a host interface, an IP, a route, DNS."""
    ip: dict[str, Any] = {"address": "192.0.2.10/32", "interface": 0}
    if not at_least(version, "1.0.0"):
        ip["version"] = "4"
    return {
        "cniVersion": version,
        "interfaces": [{"name": "cfprev0", "mac": "02:00:00:00:00:01"}],
        "ips": [ip],
        "routes": [{"dst": "198.51.100.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]},
    }


def chain_kept(ctx: Context) -> Outcome:
    prev = previous_result(ctx.version)
    with ctx.attached(prevResult=prev) as a:
        out = a.result
        interfaces = interfaces_of(a)
        missing = []
        if not any(i.get("name") == "cfprev0" for i in interfaces):
            missing.append("interface cfprev0")
        for ip in out.get("ips", []) if isinstance(out.get("ips"), list) else []:
            index = ip.get("interface") if isinstance(ip, dict) else None
            if bare(str(ip.get("address", ""))) == "192.0.2.10":
                if (
                    not isinstance(index, int)
                    or not 0 <= index < len(interfaces)
                    or interfaces[index].get("name") != "cfprev0"
                ):
                    missing.append("192.0.2.10's interface index (it must still point to cfprev0)")
                break
        else:
            missing.append("IP 192.0.2.10/32")
        if not any(isinstance(r, dict) and r.get("dst") == "198.51.100.0/24" for r in out.get("routes", []) or []):
            missing.append("route 198.51.100.0/24")
        if "192.0.2.53" not in ((out.get("dns") or {}).get("nameservers") or []):
            missing.append("nameserver 192.0.2.53")
        if missing:
            raise Failed(
                f"the result dropped what prevResult held: {', '.join(missing)}",
                "prevResult's interface, IP, route and DNS passed through with its own added",
                a.add.describe(),
            )
    return Outcome.ok()


RULES: list[Rule[Context]] = [
    Rule("chain.with-tuning", "chained before tuning: tuning takes its result; CHECK and DEL take the chain's",
         cite("§3 Checking an attachment", "checking-an-attachment", "the previous result provided is always the final result of the _add_ operation."),
         chain_consumed, per_version=True),
    Rule("chain.prev-result-kept", "given a prevResult, ADD outputs it with its own changes added",
         cite(SUCCESS, "add-success", "Plugins provided a `prevResult` key as part of their request configuration must output it as their result, with any possible modifications made by that plugin included."),
         chain_kept, per_version=True),
]  # fmt: skip
