"""The agent's BGP peers (several, each with its AS), its node IP announced, BFD, and BPF map sizes:
flags and TOML as the agent reads them, and the bird configuration it writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from podnet.agent.config import ConfigError, load_config
from podnet.bgp.bird import KERNEL_METRIC, BGPConfig, Peer
from podnet.cmd.agent import parse_args


def flags(*argv: str) -> dict[str, object]:
    args = parse_args(["--node-ip", "10.2.0.1", *argv])
    return {k: v for k, v in vars(args).items() if k not in ("config", "log_level")}


def test_repeated_bgp_peer_flags_pair_with_their_as_numbers() -> None:
    config = load_config(
        None,
        flags("--bgp-peer", "10.1.0.1", "--bgp-peer", "10.1.0.5", "--bgp-peer-asn", "65001", "--bgp-peer-asn", "65002"),
    )
    assert config.bgp_peers() == [("10.1.0.1", 65001), ("10.1.0.5", 65002)]
    one_as = load_config(None, flags("--bgp-peer", "10.1.0.1", "--bgp-peer", "10.1.0.5", "--bgp-peer-asn", "65000"))
    assert one_as.bgp_peers() == [("10.1.0.1", 65000), ("10.1.0.5", 65000)]
    default = load_config(None, flags("--bgp-peer", "10.1.0.1"))  # as before: one peer, AS 65000
    assert default.bgp_peers() == [("10.1.0.1", 65000)]


def test_toml_takes_a_list_of_peers_and_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'node_ip = "10.2.0.1"\nbgp_peer = ["10.1.0.1", "10.1.0.5"]\nbgp_peer_asn = [65001, 65002]\n'
        "bgp_announce_node_ip = true\nbgp_bfd_interval_ms = 100\nbpf_map_entries = {endpoints = 256}\n"
    )
    config = load_config(str(path), {})
    assert config.bgp_peers() == [("10.1.0.1", 65001), ("10.1.0.5", 65002)] and config.bgp_announce_node_ip
    assert config.bgp_bfd_interval_ms == 100 and config.bpf_map_entries == {"endpoints": 256}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "--bgp-peer",
                "10.1.0.1",
                "--bgp-peer",
                "10.1.0.5",
                "--bgp-peer-asn",
                "1",
                "--bgp-peer-asn",
                "2",
                "--bgp-peer-asn",
                "3",
            ],
            "bgp_peer_asn: give one AS for every peer or one per peer (2 peers, 3 AS numbers)",
        ),
        (["--bgp-peer", "10.1.0.1", "--bgp-peer", "10.1.0.1"], "bgp_peer: a peer is given twice"),
        (["--bgp-peer", "10.1.0.1", "--bgp-peer", "leaf1"], "BGP peer"),
        (["--bgp-peer", "10.1.0.1", "--bgp-peer-asn", "0"], "bgp_peer_asn: 0 is not an AS number"),
        (["--bgp-bfd-interval-ms", "1"], "bgp_bfd_interval_ms: Input should be greater than or equal to 10"),
        (["--bpf-map-entries", "endpoints"], "'endpoints' is not NAME=N"),
        (
            ["--bpf-map-entries", "endpoint=256"],
            "no BPF map 'endpoint' (maps: endpoints, policy, ipcache, counters, events)",
        ),
        (["--bpf-map-entries", "events=5000"], "events: 5000 is not a power of 2"),
        (["--bpf-map-entries", "policy=1"], "policy: 1 is below the least size, 16"),
    ],
)
def test_bad_bgp_and_map_settings_are_refused_naming_the_field(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, flags(*argv))
    assert message in str(err.value), str(err.value)


DUAL = BGPConfig(
    "10.2.0.1",
    65005,
    (Peer("10.1.0.1", 65001), Peer("10.1.0.5", 65002)),
    announce_node_ip=True,
    bfd_interval_ms=100,
    import_default=True,
)


def test_a_dual_homed_speaker_announces_both_prefixes_on_two_sessions_from_its_links() -> None:
    text = DUAL.render("10.20.30.0/26")
    assert DUAL.names() == ["tor1", "tor2"]
    assert "protocol bgp tor1 {" in text and "protocol bgp tor2 {" in text
    assert text.count("local as 65005;") == 2  # each session from its own link's address, not the loopback
    assert "route 10.2.0.1/32 blackhole;" in text and "route 10.20.30.0/26 blackhole;" in text
    assert text.count('export where proto = "podnet_pod_cidr" || proto = "podnet_node_ip";') == 2
    assert text.count("next hop self;") == 2 and text.count("bfd on;") == 2 and "protocol bfd {" in text
    single = BGPConfig("192.168.50.2", 65001, (Peer("192.168.50.1", 65000),)).render("10.20.30.0/26")
    assert "protocol bgp tor {" in single and "local 192.168.50.2 as 65001;" in single and "bfd" not in single


def test_a_dual_homed_speaker_installs_its_leaves_defaults_as_one_multipath_route() -> None:
    text = DUAL.render("10.20.30.0/26")
    assert text.count("import where net = 0.0.0.0/0;") == 2  # a default from each leaf, nothing else
    kernel = text[text.index("protocol kernel podnet_kernel {") :].split("\n}\n")[0]
    assert "if source != RTS_BGP then reject;" in kernel  # the learned default only, never the announced blackholes
    assert "krt_prefsrc = 10.2.0.1;" in kernel  # the node's own traffic leaves from its node IP (on lo)
    assert "merge paths on;" in kernel and f"metric {KERNEL_METRIC};" in kernel
    single = BGPConfig("192.168.50.2", 65001, (Peer("192.168.50.1", 65000),)).render("10.20.30.0/26")
    assert "import none;" in single and "protocol kernel" not in single  # a single-homed node: as before
    config = load_config(None, flags("--bgp-peer", "10.1.0.1", "--bgp-peer", "10.1.0.5", "--bgp-import-default"))
    assert config.bgp_import_default and not load_config(None, flags("--bgp-peer", "10.1.0.1")).bgp_import_default


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 not installed")
def test_the_dual_homed_configuration_parses_with_bird(tmp_path: Path) -> None:
    conf = tmp_path / "bird.conf"
    conf.write_text(DUAL.render("10.20.30.0/26"))
    check = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
