"""libnetwork rules through a real dockerd 20.10: the docker CLI flows of the source documents."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lab.conformance.libnetwork.context import IPAM_DRIVER, NETWORK_DRIVER, Context
from lab.conformance.libnetwork.spec import ipam, remote, seed
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule

SLEEP = ["sleep", "3600"]


def _err(proc: object) -> str:
    return getattr(proc, "stderr", "").strip() or getattr(proc, "stdout", "").strip()


@contextmanager
def network(ctx: Context, *extra: str, must: bool = True) -> Iterator[tuple[str, str]]:
    """A docker network of the plugin's: (name, "" or the refusal's message)."""
    ctx.needs(NETWORK_DRIVER)
    name = f"cf{ctx.run_id}n{ctx.ident('x')[-4:]}"
    ipam = ["--ipam-driver", ctx.subject.driver] if IPAM_DRIVER in ctx.implements else []
    proc = ctx.docker("network", "create", "--driver", ctx.subject.driver, *ipam, *extra, name)
    if proc.returncode != 0 and must:
        raise Failed(f"docker network create failed: {_err(proc)}", "the network is created", _err(proc))
    try:
        yield name, "" if proc.returncode == 0 else _err(proc)
    finally:
        if proc.returncode == 0:
            for cid in ctx.docker("ps", "-aq", "--filter", f"network={name}").stdout.split():
                ctx.docker("rm", "-f", cid)
            ctx.docker("network", "rm", name)


def run(ctx: Context, net: str, *extra: str) -> tuple[str, str]:
    """A container on `net`: (its name, "" or why it did not start)."""
    name = f"cf{ctx.run_id}c{ctx.ident('x')[-4:]}"
    proc = ctx.docker("run", "-d", "--name", name, "--net", net, *extra, ctx.side.image, *SLEEP)
    if proc.returncode != 0:
        ctx.docker("rm", "-f", name)
        return name, _err(proc) or f"docker run exited {proc.returncode}"
    return name, ""


def ip_of(ctx: Context, container: str) -> str:
    return ctx.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container
    ).stdout.strip()


def network_create(ctx: Context) -> Outcome:
    with network(ctx) as (name, _):
        got = ctx.docker("network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", name).stdout.split()
        want = [ctx.subject.driver, ctx.subject.driver if IPAM_DRIVER in ctx.implements else "default"]
        if got != want:
            raise Failed("docker network inspect shows other drivers", " ".join(want), " ".join(got))
    return Outcome.ok()


def run_join(ctx: Context) -> Outcome:
    with network(ctx) as (net, _):
        name, why = run(ctx, net)
        if why:
            raise Failed(f"docker run on the plugin's network failed: {why}", "the container runs", why)
        ip = ip_of(ctx, name)
        addresses = ctx.docker("exec", name, "ip", "-o", "-4", "addr", "show").stdout
        routes = ctx.docker("exec", name, "ip", "-4", "route").stdout
        if not ip or f" {ip}/" not in addresses:
            raise Failed(
                f"the container lacks the address docker reports ({ip or 'none'})", ip or "an address", addresses
            )
        if "default via" not in routes:
            raise Failed("the container has no default route", "default via …", routes)
    return Outcome.ok(f"{ip}; {routes.splitlines()[0] if routes else ''}")


def _subnet(ctx: Context) -> str:
    """A small subnet the plugin can be expected to serve: around the address it gives a first container."""
    if IPAM_DRIVER not in ctx.implements:
        return "172.31.251.0/28"
    with network(ctx) as (net, _):
        name, why = run(ctx, net)
        if why:
            raise CannotCheck(f"a container could not learn the plugin's addresses: {why}")
        first = ipaddress.ip_network(f"{ip_of(ctx, name)}/28", strict=False)
    # The /28 after the one its first addresses come from: a plugin that ignores --subnet is caught.
    after = ipaddress.ip_network(f"{first.broadcast_address + 1}/28")
    return str(after if after.network_address.packed[:3] == first.network_address.packed[:3] else first)


def subnet_honoured(ctx: Context) -> Outcome:
    subnet = _subnet(ctx)
    with network(ctx, "--subnet", subnet, must=False) as (net, refused):
        if refused:
            return Outcome.ok(f"--subnet {subnet} refused: {refused}")
        name, why = run(ctx, net)
        if why:
            return Outcome.ok(f"a container on --subnet {subnet} refused: {why}")
        ip = ip_of(ctx, name)
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(subnet):
            raise Failed(
                f"the network was created with --subnet {subnet}, its container got {ip}", f"an address in {subnet}", ip
            )
    return Outcome.ok(f"{ip} in {subnet}")


def ip_honoured(ctx: Context) -> Outcome:
    subnet = _subnet(ctx)
    with network(ctx, "--subnet", subnet, must=False) as (net, refused):
        if refused:
            raise CannotCheck(f"--ip needs a network with --subnet, and --subnet {subnet} was refused")
        wanted = str(list(ipaddress.ip_network(subnet).hosts())[-1])
        name, why = run(ctx, net, "--ip", wanted)
        if why:
            return Outcome.ok(f"--ip {wanted} refused: {why}")
        got = ip_of(ctx, name)
        if got != wanted:
            raise Failed(f"docker run --ip {wanted} got {got}", wanted, got)
    return Outcome.ok(wanted)


def network_rm_releases(ctx: Context) -> Outcome:
    before = ctx.subject.probe() if ctx.subject.probe else None
    with network(ctx) as (net, _):
        name, why = run(ctx, net)
        if why:
            raise Failed(f"docker run failed: {why}", "a container runs", why)
        ctx.docker("rm", "-f", name)
    leftover = ctx.docker("network", "ls", "-q", "--filter", f"name={net}").stdout.strip()
    if leftover:
        raise Failed(f"docker network rm {net} left it", "the network gone", leftover)
    if ctx.subject.probe is None or before is None:
        raise CannotCheck("the network and its container are gone; what the plugin still holds cannot be seen")
    deadline, held = time.monotonic() + 10, {}
    while time.monotonic() < deadline:
        now = ctx.subject.probe()
        held = {k: sorted(set(now[k]) - set(before.get(k, []))) for k in now}
        if not any(held.values()):
            return Outcome.ok("everything the network and its container took was released")
        time.sleep(0.2)
    raise Failed(f"after docker rm and docker network rm the plugin still holds {held}", "nothing of theirs", str(held))


def plugin_restart(ctx: Context) -> Outcome:
    if ctx.subject.restart is None:
        raise CannotCheck("the suite cannot restart this plugin (give the command that starts it: --start)")
    with network(ctx) as (net, _):
        name, why = run(ctx, net)
        if why:
            raise Failed(f"docker run failed: {why}", "a container runs", why)
        ip = ip_of(ctx, name)
        ctx.subject.restart()
        if ctx.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
            raise Failed("the container stopped when the plugin restarted", "still running", "stopped")
        if f" {ip}/" not in ctx.docker("exec", name, "ip", "-o", "-4", "addr", "show").stdout:
            raise Failed(f"the container lost {ip} when the plugin restarted", ip, "gone")
        other, why = run(ctx, net)
        if why:
            raise Failed(f"after the restart a new container cannot join: {why}", "docker run works", why)
        for container in (name, other):
            proc = ctx.docker("rm", "-f", container)
            if proc.returncode != 0:
                raise Failed(f"after the restart docker rm -f failed: {_err(proc)}", "removed", _err(proc))
    return Outcome.ok()


RULES: list[Rule[Context]] = [
    Rule("docker.network-create", "docker network create --driver X --ipam-driver X makes a network of its",
         seed("000_185a468d9b98e65a.txt", "docker network create --driver cilium --ipam-driver cilium", "dockerd first loads the IPAM driver (RequestPool, the gateway) and then calls the network driver's CreateNetwork"),
         network_create, needs=NETWORK_DRIVER),
    Rule("docker.run-join", "docker run on its network: the container has its address and a default route",
         remote("Join", "join", "The entries in `\"StaticRoutes\"` represent routes that should be added to an interface once it has been moved into the sandbox."),
         run_join, needs=NETWORK_DRIVER),
    Rule("docker.subnet-honoured", "--subnet is honoured, or refused with a message",
         remote("Create network", "create-network", "The network driver is expected to honor the ip-addressing data supplied by IPAM driver."),
         subnet_honoured, needs=NETWORK_DRIVER),
    Rule("docker.ip-honoured", "--ip is honoured, or refused with a message",
         remote("Create endpoint", "create-endpoint", "If supplied, `Address` is an IPv4 address and subnet in CIDR notation"),
         ip_honoured, needs=NETWORK_DRIVER),
    Rule("docker.network-rm-releases", "docker rm and docker network rm release everything they took",
         ipam("IPAM Configuration and flow", "ipam-configuration-and-flow", "On network deletion, libnetwork will iterate the list of `IpamData` structures and perform the following requests to ipam driver: Release the network gateway address via `ReleaseAddress()` … Release the pool via `ReleasePool()`"),
         network_rm_releases, needs=NETWORK_DRIVER),
    Rule("docker.plugin-restart", "a plugin restart leaves running containers alone; new ones still join",
         seed("003_fa611effae1d2d40.txt", "CNM: Sandbox", "a Sandbox holds a container's network configuration, its interfaces and routing table: once joined, they are the container's, not the driver process's"),
         plugin_restart, needs=NETWORK_DRIVER),
]  # fmt: skip
