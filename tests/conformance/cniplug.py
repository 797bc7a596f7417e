"""cfplug: a small CNI plugin that passes every rule of `lab conformance cni`, and its mutants.

It creates a veth pair (host side `cf<hash>`, the pod side CNI_IFNAME in
CNI_NETNS), gives the pod side an address from `ipam.ranges` (stored the way
host-local stores it, so the suite's host-local probe reads it) and a default
route, and speaks spec 0.3.0 … 1.1.0. `MUTANTS` names, per rule, the one
behaviour a mutant breaks; `CNIPlug(kernel, mutant=rule_id)` is that mutant.
The kernel is `realkernel.RealKernel` (ip commands; run as `python -m tests.conformance.cniplug`)
or the fake one of the unit tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from lab.conformance.kernel import Link

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@contextlib.contextmanager
def unavailable(store: Path) -> Iterator[None]:
    """While it lasts, the plugin whose store (IPAM dataDir / network) is `store` cannot serve ADD:
    its STATUS must say so (what a subject's `unavailable` hook does)."""
    marker = store / "UNAVAILABLE"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    try:
        yield
    finally:
        marker.unlink()


# rule id -> what its mutant does wrong (and nothing else)
MUTANTS = {
    "version.reply": "VERSION leaves out supportedVersions",
    "version.echo": "VERSION always answers 1.1.0",
    "version.accepted": "DEL at 0.3.0, a version it lists, is refused",
    "version.unsupported": "an unsupported cniVersion is error 7, not 1",
    "env.command-missing": "no CNI_COMMAND: exits 0 silently",
    "env.command-unknown": "an unknown CNI_COMMAND: exits 0 silently",
    "env.containerid-missing": "no CNI_CONTAINERID is error 7, not 4",
    "env.netns-missing": "no CNI_NETNS is error 7, not 4",
    "env.ifname-missing": "no CNI_IFNAME is error 4 without naming it",
    "env.containerid-invalid": "any CNI_CONTAINERID is taken",
    "config.not-json": "a configuration that is not JSON is error 7, not 6",
    "config.name-missing": "no network name is error 4, not 7",
    "config.name-invalid": "any network name is taken",
    "add.result-schema": "a 1.0.0 result carries ips[].version (a 0.x field)",
    "add.interface-in-result": "the pod interface's sandbox is another path",
    "add.ip-interface-index": "IPs carry no interface index",
    "add.interface-present": "the result reports another MAC than the interface's",
    "add.addresses-present": "the address is not put on the interface (nor checked)",
    "add.routes-present": "the default route is reported, not added",
    "add.interface-exists": "the IP is allocated before the interface, and kept when that fails",
    "add.second-same-id": "a second ADD of an attachment releases the first one's IP",
    "add.ifname-max": "a 15-byte CNI_IFNAME is refused (off by one)",
    "add.ifname-invalid": "a CNI_IFNAME too long is cut to 15 bytes",
    "add.concurrent": "IPAM without its lock, slow between reading and writing",
    "chain.with-tuning": "CHECK wants prevResult to be exactly its own ADD result",
    "chain.prev-result-kept": "ADD ignores prevResult",
    "del.idempotent": "a second DEL of an attachment is an error",
    "del.netns-gone": "DEL with the namespace gone is an error",
    "del.never-added": "DEL of an attachment it never saw is an error",
    "del.without-prev-result": "DEL without prevResult is an error when there is something to release",
    "del.releases": "DEL with the namespace there forgets to release the IP",
    "del.removes-interface": "DEL leaves the interface",
    "check.after-add": "CHECK prints the result on success",
    "check.interface-gone": "CHECK's error for a missing interface does not name it",
    "check.address-gone": "CHECK does not look at addresses",
    "check.no-prev-result": "CHECK without prevResult succeeds",
    "gc.removes-stale": "GC releases nothing",
    "gc.keeps-valid": "GC releases every attachment, valid or not",
    "status.ready": "STATUS is error 50 even when it can serve ADD",
    "status.unavailable": "STATUS succeeds even when it cannot serve ADD",
    "error.form": "DEL of nothing prints an error object and exits 0",
    "error.cniversion": "errors leave out cniVersion",
}


class PluginKernel(Protocol):
    def veth(self, host: str, netns: str, ifname: str) -> None: ...
    def link(self, netns: str | None, name: str) -> Link | None: ...
    def add_address(self, netns: str, name: str, cidr: str) -> None: ...
    def add_route(self, netns: str, dst: str, gateway: str, name: str) -> None: ...
    def delete_link(self, netns: str | None, name: str) -> None: ...
    def exists(self, netns: str) -> bool: ...


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class CNIPlug:
    def __init__(self, kernel: PluginKernel, mutant: str | None = None, race_s: float = 0.3):
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"no mutant {mutant!r}")
        self.kernel, self.mutant, self.race_s = kernel, mutant, race_s

    def bug(self, rule: str) -> bool:
        return self.mutant == rule

    # -- entry --------------------------------------------------------------------------------
    def main(self, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
        version = "1.1.0"
        try:
            command = env.get("CNI_COMMAND", "")
            if not command:
                if self.bug("env.command-missing"):
                    return 0, ""
                raise CNIError(4, "CNI_COMMAND is not set")
            if command == "VERSION":
                return 0, json.dumps(self.version_reply(stdin))
            conf = self.conf(stdin)
            version = conf["cniVersion"]
            out = self.dispatch(command, env, conf)
            return 0, "" if out is None else json.dumps(out)
        except CNIError as err:
            reply: dict[str, Any] = {"cniVersion": version, "code": err.code, "msg": err.msg}
            if err.details:
                reply["details"] = err.details
            if self.bug("error.cniversion"):
                del reply["cniVersion"]
            return 1, json.dumps(reply)

    def version_reply(self, stdin: bytes) -> dict[str, Any]:
        try:
            asked = json.loads(stdin or b"{}").get("cniVersion")
        except (ValueError, AttributeError):
            asked = None
        answer = asked if asked in VERSIONS and not self.bug("version.echo") else "1.1.0"
        return (
            {"cniVersion": answer}
            if self.bug("version.reply")
            else {"cniVersion": answer, "supportedVersions": VERSIONS}
        )

    def conf(self, stdin: bytes) -> dict[str, Any]:
        try:
            conf = json.loads(stdin)
        except ValueError as err:
            raise CNIError(7 if self.bug("config.not-json") else 6, f"configuration is not JSON: {err}") from None
        if not isinstance(conf, dict):
            raise CNIError(7, "configuration must be an object")
        version = conf.get("cniVersion")
        if version not in VERSIONS:
            raise CNIError(7 if self.bug("version.unsupported") else 1, f"cniVersion {version!r} is not supported")
        name = conf.get("name")
        if not isinstance(name, str) or not name:
            raise CNIError(4 if self.bug("config.name-missing") else 7, "configuration lacks a name")
        if _key(version) >= (1, 0, 0) and not NAME.fullmatch(name) and not self.bug("config.name-invalid"):
            raise CNIError(7, f"network name {name!r} is invalid")
        return conf

    def dispatch(self, command: str, env: dict[str, str], conf: dict[str, Any]) -> Any:
        if command in ("ADD", "DEL", "CHECK"):
            handler = {"ADD": self.add, "DEL": self.delete, "CHECK": self.check}[command]
            return handler(self.attachment(command, env), conf)
        if command == "GC":
            return self.gc(conf)
        if command == "STATUS":
            return self.status(conf)
        if self.bug("env.command-unknown"):
            return None
        raise CNIError(4, f"unknown CNI_COMMAND {command!r}")

    def attachment(self, command: str, env: dict[str, str]) -> tuple[str, str, str]:
        required = ["CNI_CONTAINERID", "CNI_IFNAME"] + (["CNI_NETNS"] if command != "DEL" else [])
        for name in required:
            if not env.get(name):
                code = 7 if name != "CNI_IFNAME" and self.bug(f"env.{name[4:].lower()}-missing") else 4
                named = "a variable" if self.bug("env.ifname-missing") and name == "CNI_IFNAME" else name
                raise CNIError(code, f"{command} needs {named} in the environment")
        cid, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
        if not NAME.fullmatch(cid) and not self.bug("env.containerid-invalid"):
            raise CNIError(4, f"CNI_CONTAINERID {cid!r} is invalid")
        limit = 14 if self.bug("add.ifname-max") else 15
        if self.bug("add.ifname-invalid"):
            ifname = ifname[:15]
        if len(ifname.encode()) > limit or "/" in ifname or ifname in (".", ".."):
            raise CNIError(4, f"CNI_IFNAME {ifname!r} is not a valid interface name")
        return cid, env.get("CNI_NETNS", ""), ifname

    # -- IPAM, stored as host-local stores it ----------------------------------------------------
    def store(self, conf: dict[str, Any]) -> Path:
        ipam = conf.get("ipam") or {}
        path = Path(ipam.get("dataDir", "/tmp/cfplug")) / conf["name"]
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def locked(self, conf: dict[str, Any]) -> Iterator[Path]:
        store = self.store(conf)
        if self.bug("add.concurrent"):
            yield store
            return
        with open(store / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield store

    def held(self, store: Path) -> dict[str, tuple[str, str]]:
        out = {}
        for path in store.iterdir():
            with contextlib.suppress(ValueError, OSError):
                ipaddress.ip_address(path.name)
                cid, _, ifname = path.read_bytes().decode().partition("\r\n")
                out[path.name] = (cid, ifname)
        return out

    def allocate(self, conf: dict[str, Any], cid: str, ifname: str) -> tuple[str, str]:
        subnet = ipaddress.ip_network(conf["ipam"]["ranges"][0][0]["subnet"])
        gateway = str(next(subnet.hosts()))
        with self.locked(conf) as store:
            taken = self.held(store)
            if (cid, ifname) in taken.values():
                raise CNIError(18, f"{cid}/{ifname} already has an address")
            for ip in list(subnet.hosts())[1:]:
                if str(ip) not in taken:
                    if self.bug("add.concurrent"):
                        time.sleep(self.race_s)  # the race the lock prevents
                    (store / str(ip)).write_text(f"{cid}\r\n{ifname}")
                    return f"{ip}/{subnet.prefixlen}", gateway
        raise CNIError(100, f"{subnet} is exhausted")

    def release(self, conf: dict[str, Any], cid: str, ifname: str) -> list[str]:
        with self.locked(conf) as store:
            gone = [ip for ip, owner in self.held(store).items() if owner == (cid, ifname)]
            for ip in gone:
                (store / ip).unlink(missing_ok=True)
        return gone

    # -- commands -----------------------------------------------------------------------------
    def add(self, att: tuple[str, str, str], conf: dict[str, Any]) -> dict[str, Any]:
        cid, netns, ifname = att
        if not self.kernel.exists(netns):
            raise CNIError(7, f"network namespace {netns} does not exist")
        if self.bug("add.interface-exists"):
            cidr, gateway = self.allocate(conf, cid, ifname)
        if self.kernel.link(netns, ifname) is not None:
            if self.bug("add.second-same-id"):
                self.release(conf, cid, ifname)
            raise CNIError(101, f"interface {ifname} already exists in {netns}")
        if not self.bug("add.interface-exists"):
            cidr, gateway = self.allocate(conf, cid, ifname)
        host = host_name(cid, ifname)
        try:
            self.kernel.veth(host, netns, ifname)
            if not self.bug("add.addresses-present"):
                self.kernel.add_address(netns, ifname, cidr)
            if not self.bug("add.routes-present"):
                self.kernel.add_route(netns, "0.0.0.0/0", gateway, ifname)
        except Exception as err:
            if not self.bug("add.interface-exists"):
                self.release(conf, cid, ifname)
            self.kernel.delete_link(None, host)
            raise CNIError(101, f"setting up {ifname} in {netns}: {err}") from None
        pod, outside = self.kernel.link(netns, ifname), self.kernel.link(None, host)
        mac = "02:00:00:00:00:99" if self.bug("add.interface-present") else (pod.mac if pod else "")
        sandbox = netns + "-elsewhere" if self.bug("add.interface-in-result") else netns
        ip: dict[str, Any] = {"address": cidr, "gateway": gateway}
        if not self.bug("add.ip-interface-index"):
            ip["interface"] = 1
        own = {
            "cniVersion": conf["cniVersion"],
            "interfaces": [
                {"name": host, "mac": outside.mac if outside else ""},
                {"name": ifname, "mac": mac, "sandbox": sandbox},
            ],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
            "dns": {},
        }
        prev = None if self.bug("chain.prev-result-kept") else conf.get("prevResult")
        result = shaped(merged(prev, own), conf["cniVersion"])
        if self.bug("add.result-schema") and conf["cniVersion"] == "1.0.0":
            result["ips"][-1]["version"] = "4"
        if self.bug("chain.with-tuning"):
            (self.store(conf) / f"result-{cid}-{ifname}").write_text(json.dumps(result, sort_keys=True))
        return result

    def delete(self, att: tuple[str, str, str], conf: dict[str, Any]) -> Any:
        cid, netns, ifname = att
        store = self.store(conf)
        tombstone = store / f"deleted-{cid}-{ifname}"
        known = any(owner == (cid, ifname) for owner in self.held(store).values())
        if self.bug("version.accepted") and conf["cniVersion"] == "0.3.0":
            raise CNIError(1, "DEL at 0.3.0 is not supported")
        if self.bug("del.idempotent") and tombstone.exists():
            raise CNIError(3, f"{cid}/{ifname} was already deleted")
        if self.bug("del.never-added") and not known and not tombstone.exists():
            raise CNIError(3, f"{cid}/{ifname} is unknown")
        if self.bug("del.netns-gone") and netns and not self.kernel.exists(netns):
            raise CNIError(7, f"network namespace {netns} does not exist")
        late = _key(conf["cniVersion"]) >= (0, 4, 0)  # DEL carries prevResult from 0.4.0 on
        if self.bug("del.without-prev-result") and late and known and "prevResult" not in conf:
            raise CNIError(7, "DEL needs prevResult to know what to release")
        if not (self.bug("del.releases") and netns and self.kernel.exists(netns)):
            self.release(conf, cid, ifname)
        if not self.bug("del.removes-interface"):
            self.kernel.delete_link(None, host_name(cid, ifname))
        if self.bug("del.idempotent") or self.bug("del.never-added"):
            tombstone.write_text("")
        if self.bug("error.form") and not known:
            return {"cniVersion": conf["cniVersion"], "code": 3, "msg": f"{cid}/{ifname}: nothing to delete"}
        return None

    def check(self, att: tuple[str, str, str], conf: dict[str, Any]) -> Any:
        cid, netns, ifname = att
        prev = conf.get("prevResult")
        if not isinstance(prev, dict):
            if self.bug("check.no-prev-result"):
                return None
            raise CNIError(7, "CHECK needs prevResult")
        if self.bug("chain.with-tuning"):
            mine = self.store(conf) / f"result-{cid}-{ifname}"
            if mine.exists() and json.loads(mine.read_text()) != prev:
                raise CNIError(7, "prevResult is not the result ADD returned")
        link = self.kernel.link(netns, ifname)
        if link is None:
            raise CNIError(
                101,
                "an interface is missing" if self.bug("check.interface-gone") else f"{ifname} is missing in {netns}",
            )
        if not (self.bug("check.address-gone") or self.bug("add.addresses-present")):
            interfaces = prev.get("interfaces", [])
            for ip in prev.get("ips", []):
                index = ip.get("interface")
                mine_too = index is None or (index < len(interfaces) and interfaces[index].get("name") == ifname)
                if mine_too and ip["address"] not in link.addresses:
                    raise CNIError(101, f"{ifname} lacks {ip['address']}")
        return prev if self.bug("check.after-add") else None

    def gc(self, conf: dict[str, Any]) -> None:
        valid = {(a.get("containerID"), a.get("ifname")) for a in conf.get("cni.dev/valid-attachments", [])}
        if self.bug("gc.removes-stale"):
            return
        with self.locked(conf) as store:
            for ip, owner in self.held(store).items():
                if owner not in valid or self.bug("gc.keeps-valid"):
                    (store / ip).unlink(missing_ok=True)
                    self.kernel.delete_link(None, host_name(*owner))

    def status(self, conf: dict[str, Any]) -> None:
        down = (self.store(conf) / "UNAVAILABLE").exists()
        if self.bug("status.ready") or (down and not self.bug("status.unavailable")):
            raise CNIError(50, "cfplug cannot serve ADD now")


def host_name(cid: str, ifname: str) -> str:
    return "cf" + hashlib.sha1(f"{cid}/{ifname}".encode()).hexdigest()[:11]


def merged(prev: Any, own: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(prev, dict):
        return own
    shift = len(prev.get("interfaces", []))
    ips = [dict(ip) for ip in prev.get("ips", [])]
    for ip in own["ips"]:
        ips.append({**ip, "interface": ip["interface"] + shift} if "interface" in ip else dict(ip))
    dns = dict(prev.get("dns") or {})
    return {
        **own,
        "interfaces": [*prev.get("interfaces", []), *own["interfaces"]],
        "ips": ips,
        "routes": [*prev.get("routes", []), *own["routes"]],
        "dns": dns,
    }


def shaped(result: dict[str, Any], version: str) -> dict[str, Any]:
    ips = []
    for ip in result["ips"]:
        ip = {k: v for k, v in ip.items() if k != "version"}
        if _key(version) < (1, 0, 0):
            ip["version"] = str(ipaddress.ip_interface(ip["address"]).version)
        ips.append(ip)
    return {**result, "cniVersion": version, "ips": ips}


def main() -> int:
    mutant = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
    from tests.conformance.realkernel import RealKernel

    status, out = CNIPlug(RealKernel(), mutant).main(dict(os.environ), sys.stdin.buffer.read())
    if out:
        print(out)
    return status


if __name__ == "__main__":
    sys.exit(main())
