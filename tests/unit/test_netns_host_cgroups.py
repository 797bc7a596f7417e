"""Where the lab's cgroups are looked for: at each hierarchy's root, and nested where the lab's own process
sits in a nested cgroup (runc puts a relative --cgroup-parent below the caller's cgroup on cgroup v1)."""

from __future__ import annotations

from pathlib import Path

from lab.backends.netns.host import lab_cgroups


def test_lab_cgroups_are_found_at_the_root_and_nested_below_the_callers_cgroup(tmp_path: Path) -> None:
    cpu, memory = tmp_path / "cpu", tmp_path / "memory"
    made = [
        cpu / "pn-aaa111-node1",
        memory / "process_api" / "0123abcd" / "pn-aaa111-node1",  # the job's memory cgroup, as on this machine
        memory / "process_api" / "0123abcd" / "pn-bbb222-ctrl",
    ]
    for path in made:
        (path / "docker" / "c0ffee").mkdir(parents=True)
    (memory / "pn-aaa111-node1" / "pn-inner").mkdir(parents=True)  # goes with its parent, not listed apart
    (memory / "a" / "b" / "c" / "pn-too-deep").mkdir(parents=True)
    (cpu / "other").mkdir()
    found = lab_cgroups(roots=[cpu, memory])
    assert found == sorted([*made, memory / "pn-aaa111-node1"])
    assert lab_cgroups("pn-aaa111-node1", roots=[cpu, memory]) == sorted(
        [cpu / "pn-aaa111-node1", memory / "pn-aaa111-node1", made[1]]
    )
