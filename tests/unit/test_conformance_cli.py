"""`lab conformance`: what it refuses before making anything (exit status 2, a message saying why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["cni"], "give --plugin PATH"),
        (["cni", "--plugin", "/bin/true", "--subject", "bridge"], "give --plugin PATH"),
        (["cni", "--plugin", "/nonexistent/plugin"], "is not an executable file"),
        (["cni", "--plugin", "/bin/true", "--conf", "/nonexistent.conf"], "no such file"),
        (["cni", "--subject", "bridge", "--versions", "1.0.0,9.9.9"], "unknown version(s) 9.9.9"),
        (["cni", "--subject", "bridge", "--rule", "add.nope"], "unknown rule(s) add.nope"),
        (["libnetwork"], "give --plugin SOCKET"),
        (["libnetwork", "--plugin", "/nonexistent.sock"], "no unix socket there"),
        (["libnetwork", "--subject", "flannel"], "unknown subject(s) flannel"),
        (["libnetwork", "--subject", "podnet", "--rule", "nope"], "unknown rule(s) nope"),
    ],
)
def test_bad_usage_is_refused_with_why(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", *argv]) == 2
    assert says in " ".join(capsys.readouterr().err.split())


def test_every_suite_has_its_help(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for suite in ("cni", "libnetwork"):
        with pytest.raises(SystemExit) as done:
            main(["conformance", suite, "--help"])
        assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--plugin" in out and "--versions" in out and "--start" in out and "--junit" in out
