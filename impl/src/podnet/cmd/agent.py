"""podnet-agent: serve the agent API for this node.

podnet-agent [--config FILE] [--node-name N] [--socket PATH] [--store URL]
             [--cluster-cidr CIDR ...] [--mask-size N] [--pod-cidr CIDR]
             [--router-ip IP] [--mtu N] [--datapath bpf|routes] [--bpf-pin-dir DIR]
             [--netns-path PATTERN ...] [--node-ip IP] [--bgp-peer IP ...] [--bgp-peer-asn N ...]
             [--bgp-asn N] [--bgp-announce-node-ip] [--bgp-import-default]
             [--bgp-bfd-interval-ms MS] [--bpf-map-entries NAME=N ...]
             [--docker-plugin-socket PATH [--docker-host URL] [--docker-gc-interval S] [--docker-gc-grace S]
              [--docker-plugin-log-level L]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast
from urllib.parse import urlsplit

from podnet import timing
from podnet.agent.config import AgentConfig, load_config
from podnet.aiohttp_import import import_aiohttp
from podnet.errors import PodnetError
from podnet.private import make_dirs

if TYPE_CHECKING:
    from podnet.agent.service import Agent
    from podnet.bgp.bird import BirdSpeaker
    from podnet.datapath.bpf.loader import BpfObject
    from podnet.datapath.veth import VethDatapath
    from podnet.kvstore import KVStore

log = logging.getLogger("podnet.agent")
T = TypeVar("T")


class Preload(Generic[T]):
    """`make()` on a thread of its own, from now on, beside the rest of the agent's start;
    `get()` waits for it and returns what it made, or raises what it raised."""

    def __init__(self, name: str, make: Callable[[], T]):
        self._made: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], T]) -> None:
        try:
            self._made = make()
        except BaseException as err:  # raised by get(), where the caller would have made it
            self._error = err

    def get(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._made)

    def made(self) -> T | None:
        """What it made, or None (not made: it failed); never raises."""
        self._thread.join()
        return self._made


def load_bpf(config: AgentConfig) -> BpfObject:
    """The eBPF object, loaded (the verifier runs in the kernel, outside the GIL: ~0.2 s of the
    start, beside the imports when preloaded)."""
    from podnet.datapath.bpf import object_file
    from podnet.datapath.bpf.loader import BpfObject

    path = Path(config.bpf_object) if config.bpf_object else object_file()
    return BpfObject(path, Path(config.pin_dir), config.bpf_map_entries)


def start_speaker(config: AgentConfig) -> BirdSpeaker | None:
    """The BGP speaker, started before the node has a pod CIDR: bird waits a second before its
    first connect, and that second passes while the agent starts. It announces no pod CIDR until
    the agent gives it one."""
    from podnet.agent.speaker import speaker_for

    speaker = speaker_for(config, config.pod_cidr)
    if speaker is not None:
        speaker.start()
    return speaker


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="podnet-agent", description="the podnet node agent")
    p.add_argument("--config", metavar="FILE", help="TOML file with the settings below (flags override it)")
    p.add_argument("--node-name")
    p.add_argument("--socket", metavar="PATH", help="API socket (default /var/run/podnet/podnet.sock)")
    p.add_argument("--store", metavar="URL", help="kvstore URL (default sqlite:///var/lib/podnet/state.db)")
    p.add_argument("--cluster-cidr", dest="cluster_cidrs", action="append", metavar="CIDR")
    p.add_argument("--mask-size", type=int)
    p.add_argument("--pod-cidr", metavar="CIDR", help="use this pod CIDR instead of one from the cluster pool")
    p.add_argument("--router-ip", metavar="IP")
    p.add_argument("--mtu", type=int)
    p.add_argument("--ip-expiration", dest="ip_expiration_s", type=float, metavar="SECONDS")
    p.add_argument(
        "--identity-gc-grace",
        dest="identity_gc_grace_s",
        type=float,
        metavar="SECONDS",
        help="without an operator: remove identities no endpoint used for this long (default 600)",
    )
    p.add_argument("--node-ip", metavar="IP", help="this node's underlay IP (the BGP next hop)")
    p.add_argument(
        "--bgp-peer", action="append", metavar="IP", help="announce the pod CIDR to this router (bird2; repeat: each)"
    )
    p.add_argument("--bgp-asn", type=int, metavar="N", help="this node's AS (default 65001)")
    p.add_argument(
        "--bgp-peer-asn",
        type=int,
        action="append",
        metavar="N",
        help="the routers' AS (default 65000): once for all, or once per --bgp-peer, in order",
    )
    p.add_argument(
        "--bgp-announce-node-ip",
        action="store_const",
        const=True,
        help="announce the node IP (a /32 on lo: a dual-homed node) too; sessions speak from their links' addresses",
    )
    p.add_argument(
        "--bgp-import-default",
        action="store_const",
        const=True,
        help="install the default route each peer sends (ECMP over the peers that send one; a dual-homed node)",
    )
    p.add_argument("--bgp-bfd-interval-ms", type=int, metavar="MS", help="BFD on every BGP session at this interval")
    p.add_argument("--bgp-bfd-multiplier", type=int, metavar="N", help="BFD packets missed before down (default 3)")
    p.add_argument(
        "--bpf-map-entries",
        action="append",
        metavar="NAME=N",
        help="size a BPF map (endpoints, policy, ipcache, counters: entries; events: bytes); repeat",
    )
    p.add_argument(
        "--ipam-mode",
        choices=["local", "operator"],
        help="local (default): take a pod CIDR from the store's cluster pool; "
        "operator: register and wait for podnet-operator to assign one",
    )
    p.add_argument(
        "--datapath",
        choices=["bpf", "routes"],
        help="bpf (default): tc programs, no per-pod routes, policy; routes: veth + /32 routes",
    )
    p.add_argument("--bpf-pin-dir", metavar="DIR", help="pin the BPF maps here (default /sys/fs/bpf/podnet/<node>)")
    p.add_argument("--bpf-object", metavar="FILE", help="load this compiled BPF object instead of podnet's own")
    p.add_argument(
        "--netns-path",
        dest="netns_paths",
        action="append",
        metavar="PATTERN",
        help="a place pods' network namespaces may be (repeat; replaces the defaults: /run/netns/*, "
        "/var/run/netns/*, /run/user/*/netns/*, /proc/*/ns/net, /var/run/docker/netns/*, runtimes' state dirs)",
    )
    p.add_argument(
        "--docker-plugin-socket",
        metavar="PATH",
        help="also serve the libnetwork plugin (docker) on this socket, in this process (no podnet-docker)",
    )
    p.add_argument("--docker-host", metavar="URL", help="dockerd's API, for the plugin's labels and GC")
    p.add_argument("--docker-gc-interval", dest="docker_gc_interval_s", type=float, metavar="SECONDS")
    p.add_argument("--docker-gc-grace", dest="docker_gc_grace_s", type=float, metavar="SECONDS")
    p.add_argument("--docker-plugin-log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def _started(what: str) -> str:
    seconds = timing.since_exec()
    return f"{what}, {seconds:.2f} s after exec" if seconds is not None else what


async def run(agent: Agent, socket_path: str, phases: timing.Phases | None = None) -> None:
    from podnet.agent.server import make_app, serve

    if phases is not None:
        phases.mark("import the server")
    app, api = make_app(agent)
    runner = await serve(app, socket_path)
    if phases is not None:
        phases.mark("serve")
    log.info("%s", _started(f"serving the agent API on {socket_path}"))
    if phases is not None:
        log.debug("%s", phases.summary())
    loop = asyncio.get_running_loop()
    plugin = None
    if agent.config.docker_plugin_socket:
        from podnet.docker.inagent import start_plugin  # only in this mode: docker's SDK is no small import

        try:
            plugin = await start_plugin(api, agent.config)
        except PodnetError:  # its socket taken: the agent stops as it would on SIGTERM
            await loop.run_in_executor(None, agent.stop)
            await runner.cleanup()
            raise
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), agent.config.gc_interval_s)
        try:
            await api.call(agent.gc)
        except PodnetError as err:
            log.error("garbage collection failed: %s", err)
    log.info("stopping")
    api.closing = True
    if plugin is not None:
        await plugin.stop()
    # Not on the API worker: it may be stuck on an unreachable store, and the
    # BGP speaker must stop (withdrawing the pod CIDR) whatever the worker does.
    await loop.run_in_executor(None, agent.stop)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "log_level")}
    # Where the start goes, at debug level: "phases: agent start: … ms: config …, serve …" (from main()).
    phases = timing.start("agent start", log)

    def mark(phase: str) -> None:
        if phases is not None:
            phases.mark(phase)

    speaker: Preload[BirdSpeaker | None] | None = None
    agent: Agent | None = None
    try:
        config = load_config(args.config, overrides)
        mark("config")
        import_aiohttp()  # the API's server; first, while this process has one thread
        mark("import aiohttp")
        if config.bgp_peers() and config.node_ip:
            _sigterm_exits()  # from now on a SIGTERM runs the finally below, which stops bird
            speaker = Preload("bgp-start", partial(start_speaker, config))
        preload = Preload("bpf-load", partial(load_bpf, config)) if config.datapath == "bpf" else None
        from podnet.kvstore import open_store

        _ensure_store_dir(config.store)
        store = open_store(config.store)
        mark("open the store")
        if config.ipam_mode == "operator" and config.pod_cidr is None:
            # Serves healthz from here, before the agent proper below is imported.
            cidr = asyncio.run(_wait(config, store))
            if cidr is None:
                return 0  # stopped while waiting
            if speaker is not None:
                _sigterm_exits()  # asyncio.run gave SIGTERM its default action back
            config = config.model_copy(update={"pod_cidr": cidr})
            mark("wait for the pod CIDR")
        # Only now the rest (the agent's parts, then the server), beside the eBPF object's load.
        from podnet.agent.service import Agent

        mark("import the agent")
        datapath, note = make_datapath(config, preload)
        mark("datapath")
        agent = Agent(config, store, datapath, speaker.get() if speaker is not None else None)
        agent.datapath_note = note
        agent.start()
        mark("start: host device, restore, policy")
        asyncio.run(run(agent, config.socket, phases))
    except PodnetError as err:
        print(f"podnet-agent: error: {err}", file=sys.stderr)
        return 1
    finally:
        # No bird outlives the agent: stopped while waiting, failed, or serving failed (run() stops the
        # agent when it ends well; twice is harmless).
        if agent is not None:
            agent.stop()
        elif speaker is not None and (early := speaker.made()) is not None:
            early.stop()
    return 0


def _sigterm_exits() -> None:
    """SIGTERM raises SystemExit (status 143) instead of ending the process at once: main()'s
    `finally` then stops the BGP speaker it started early."""

    def exit_(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_)


def make_datapath(config: AgentConfig, preload: Preload[BpfObject] | None = None) -> tuple[VethDatapath, str | None]:
    """The configured datapath; the routes one, with the reason, when eBPF cannot load."""
    from podnet.datapath.ebpf import BpfDatapath
    from podnet.datapath.veth import VethDatapath

    if config.datapath == "routes":
        return VethDatapath(mtu=config.mtu), None
    try:
        obj = Path(config.bpf_object) if config.bpf_object else None
        loaded = preload.get() if preload is not None else None
        bpf = BpfDatapath(
            pin_dir=Path(config.pin_dir), mtu=config.mtu, obj=obj, loaded=loaded, map_sizes=config.bpf_map_entries
        )
    except (PodnetError, OSError) as err:
        reason = f"eBPF datapath unavailable, using routes: {err}"
        detail = getattr(err, "verifier_log", "")
        log.warning("%s%s", reason, f"\n{detail}" if detail else "")
        return VethDatapath(mtu=config.mtu), reason
    log.info("datapath: %s", bpf.describe())
    return bpf, None


async def _wait(config: AgentConfig, store: KVStore) -> str | None:
    from podnet.agent.waiting import wait_for_pod_cidr

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await wait_for_pod_cidr(config, store, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _ensure_store_dir(url: str) -> None:
    """The default SQLite store lives in a directory that may not exist yet (created 0700)."""
    parts = urlsplit(url)
    path = parts.path
    if parts.scheme == "sqlite" and path.startswith("/"):
        make_dirs(Path(path).parent)


if __name__ == "__main__":
    sys.exit(main())
