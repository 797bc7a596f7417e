from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podnet.cli import main

SEED_ARGS = [
    "ipam",
    "plan",
    "--cluster-cidr",
    "10.20.30.40/24",
    "--cluster-cidr",
    "50.60.70.80/24",
    "--mask-size",
    "26",
]


def test_seed_plan_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SEED_ARGS, "--nodes", "9"]) == 0
    out = capsys.readouterr().out
    assert "note: 10.20.30.40/24 has host bits set; using its network 10.20.30.0/24" in out
    rows = [line.split("│")[1:-1] for line in out.splitlines() if line.startswith("│")]
    table = [[cell.strip() for cell in row] for row in rows]
    assert table == [
        ["node1", "10.20.30.0/26", "10.20.30.0/24", "61"],
        ["node2", "10.20.30.64/26", "10.20.30.0/24", "61"],
        ["node3", "10.20.30.128/26", "10.20.30.0/24", "61"],
        ["node4", "10.20.30.192/26", "10.20.30.0/24", "61"],
        ["node5", "50.60.70.0/26", "50.60.70.0/24", "61"],
        ["node6", "50.60.70.64/26", "50.60.70.0/24", "61"],
        ["node7", "50.60.70.128/26", "50.60.70.0/24", "61"],
        ["node8", "50.60.70.192/26", "50.60.70.0/24", "61"],
        ["node9", "none", "-", "0"],
    ]
    assert (
        "node9 gets no pod CIDR: cluster pool exhausted: 8 of 8 node CIDRs in use (10.20.30.0/24, 50.60.70.0/24 at /26)"
        in out
    )


def test_seed_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SEED_ARGS, "--node", "a", "--node", "b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["capacity"] == 8 and data["mask_size"] == 26
    assert [c["network"] for c in data["cluster_cidrs"]] == ["10.20.30.0/24", "50.60.70.0/24"]
    assert [(n["node"], n["pod_cidr"], n["pod_ips"]) for n in data["nodes"]] == [
        ("a", "10.20.30.0/26", 61),
        ("b", "10.20.30.64/26", 61),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cluster-cidr", "10.0.0.0/16", "--cluster-cidr", "10.0.1.0/24", "--mask-size", "24", "--nodes", "1"],
            "podnet: error: cluster CIDRs 10.0.0.0/16 and 10.0.1.0/24 overlap",
        ),
        (["--cluster-cidr", "10.0.0.0/8", "--mask-size", "30", "--nodes", "1"], "has 2^22 node subnets"),
        (["--cluster-cidr", "10.0.0.0", "--mask-size", "24", "--nodes", "1"], "missing prefix length"),
    ],
)
def test_errors_are_one_line_exit_1(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ipam", "plan", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_usage_errors_exit_2_and_the_real_binary_prints_no_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "podnet.cli",
            "ipam",
            "plan",
            "--cluster-cidr",
            "x/8",
            "--mask-size",
            "24",
            "--nodes",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid node count 0" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "podnet.cli",
            "ipam",
            "plan",
            "--cluster-cidr",
            "x/8",
            "--mask-size",
            "24",
            "--nodes",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("podnet: error: invalid cluster CIDR 'x/8'") and "Traceback" not in proc.stderr
