"""Drawings for the report: the topology, the `lab up` timeline, a libnetwork call sequence."""

from __future__ import annotations

from lab.report.style import esc
from lab.scenario.results import LabSummary

ROLE_COLORS = {"worker": ("#eefaf0", "#2f8f4e"), "control": ("#fff6e5", "#b7791f")}
TIMELINE_BAR = "#6b8fd6"
CALL_ARROW = "#7a3fc8"


def topology(lab: LabSummary) -> str:
    """The ToR on top, every node below with its role, underlay address and pod CIDR (or its services);
    a fabric in tiers (fabric())."""
    if any(n.role in ("leaf", "spine") for n in lab.nodes):
        return fabric(lab)
    nodes = [n for n in lab.nodes if n.role != "tor"]
    subnets = {link.node: link.subnet for link in lab.links}
    width = max(360, 200 * len(nodes))
    tor_x = width / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="240" font-family="sans-serif" font-size="12">',
        f'<rect x="{tor_x - 80}" y="10" width="160" height="40" rx="6" fill="#e8f0fe" stroke="#4a6fd1"/>',
        f'<text x="{tor_x}" y="35" text-anchor="middle">{esc(lab.tor)} (ToR, bird2)</text>',
    ]
    for i, node in enumerate(nodes):
        x = (i + 0.5) * width / len(nodes)
        fill, stroke = ROLE_COLORS.get(node.role, ("#f4f4f4", "#888"))
        detail = f"pods {node.pod_cidr or 'none'}" if node.role == "worker" else "etcd, podnet-operator"
        parts += [
            f'<line x1="{tor_x}" y1="50" x2="{x}" y2="140" stroke="#888"/>',
            f'<text x="{x}" y="130" text-anchor="middle" fill="#555">{esc(subnets.get(node.name, ""))}</text>',
            f'<rect x="{x - 90}" y="140" width="180" height="84" rx="6" fill="{fill}" stroke="{stroke}"/>',
            f'<text x="{x}" y="160" text-anchor="middle" font-weight="bold">{esc(node.name)}</text>',
            f'<text x="{x}" y="177" text-anchor="middle" fill="{stroke}">{esc(node.role)}</text>',
            f'<text x="{x}" y="194" text-anchor="middle">underlay {esc(node.underlay_ip)}</text>',
            f'<text x="{x}" y="211" text-anchor="middle">{esc(detail)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def fabric(lab: LabSummary) -> str:
    """Spines on top, leaves below them, nodes at the bottom; a line per link."""
    tiers = [
        [n for n in lab.nodes if n.role == "spine"],
        [n for n in lab.nodes if n.role == "leaf"],
        [n for n in lab.nodes if n.role in ("worker", "control")],
    ]
    box_w, tops = 150, (10, 110, 230)
    width = max(360, (box_w + 14) * max(len(t) for t in tiers))
    where: dict[str, tuple[float, float]] = {}  # name -> (centre x, top y)
    for tier, top in zip(tiers, tops, strict=True):
        for i, node in enumerate(tier):
            where[node.name] = ((i + 0.5) * width / len(tier), top)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="320" font-family="sans-serif" font-size="11">'
    ]
    for link in lab.links:
        if link.node in where and link.upper in where:
            (x1, y1), (x2, y2) = where[link.upper], where[link.node]
            parts.append(
                f'<line x1="{x1}" y1="{y1 + 44}" x2="{x2}" y2="{y2}" stroke="#aaa"><title>{esc(link.subnet)}</title></line>'
            )
    for node in (n for tier in tiers for n in tier):
        x, y = where[node.name]
        fill, stroke = ROLE_COLORS.get(node.role, ("#e8f0fe", "#4a6fd1"))
        if node.role == "worker":
            detail = f"pods {node.pod_cidr or 'none'}"
        elif node.role == "control":
            detail = "etcd, podnet-operator"
        else:
            detail = "bird2 (BGP, ECMP, BFD)"
        parts += [
            f'<rect x="{x - box_w / 2}" y="{y}" width="{box_w}" height="78" rx="6" fill="{fill}" stroke="{stroke}"/>',
            f'<text x="{x}" y="{y + 16}" text-anchor="middle" font-weight="bold">{esc(node.name)}</text>',
            f'<text x="{x}" y="{y + 31}" text-anchor="middle" fill="{stroke}">{esc(node.role)}</text>',
            f'<text x="{x}" y="{y + 46}" text-anchor="middle">{esc(node.underlay_ip.split(",")[0])}</text>',
            f'<text x="{x}" y="{y + 61}" text-anchor="middle">{esc(detail)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def timeline(timings: list[tuple[str, float, float]], total: float) -> str:
    """`lab up` as bars on one time axis: steps that ran side by side overlap."""
    if not timings:
        return "<p class='muted'>no bring-up in this run (it used a lab that was up)</p>"
    total = max(total, max(start + seconds for _, start, seconds in timings), 0.001)
    label_w, bar_w, row_h = 330, 560, 18
    height = row_h * len(timings) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for tick in range(0, 11):
        x = label_w + bar_w * tick / 10
        parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 20}" stroke="#eee"/>')
        parts.append(f'<text x="{x}" y="{height - 6}" text-anchor="middle" fill="#777">{total * tick / 10:.1f}s</text>')
    for i, (what, start, seconds) in enumerate(timings):
        y = i * row_h + 2
        x = label_w + bar_w * start / total
        w = max(bar_w * seconds / total, 1.5)
        parts += [
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{esc(what[:52])}</text>',
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{TIMELINE_BAR}"><title>{esc(what)}: '
            f"{start:.2f}s + {seconds:.2f}s</title></rect>",
            f'<text x="{x + w + 4:.1f}" y="{y + 12}" fill="#555">{seconds:.2f}s</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def sequence(calls: list[str], expected: list[str], node: str) -> str:
    """dockerd → podnet-docker, one arrow per libnetwork call; the expected ones bold."""
    row_h, width = 22, 520
    height = 50 + row_h * max(len(calls), 1)
    left, right = 90, width - 110
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14" text-anchor="middle" font-weight="bold">dockerd ({esc(node)})</text>',
        f'<text x="{right}" y="14" text-anchor="middle" font-weight="bold">podnet-docker</text>',
        f'<line x1="{left}" y1="22" x2="{left}" y2="{height - 6}" stroke="#999" stroke-dasharray="4 3"/>',
        f'<line x1="{right}" y1="22" x2="{right}" y2="{height - 6}" stroke="#999" stroke-dasharray="4 3"/>',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="3" orient="auto">'
        f'<path d="M0,0 L7,3 L0,6 z" fill="{CALL_ARROW}"/></marker></defs>',
    ]
    wanted = list(expected)
    for i, call in enumerate(calls):
        y = 40 + i * row_h
        hit = bool(wanted) and call == wanted[0]
        if hit:
            wanted.pop(0)
        weight = "bold" if hit else "normal"
        parts += [
            f'<line x1="{left}" y1="{y}" x2="{right - 2}" y2="{y}" stroke="{CALL_ARROW}" stroke-width="2" marker-end="url(#arrow)"/>',
            f'<text x="{(left + right) / 2}" y="{y - 4}" text-anchor="middle" font-weight="{weight}">{esc(call)}</text>',
        ]
    if not calls:
        parts.append(f'<text x="{(left + right) / 2}" y="40" text-anchor="middle" fill="#c0262d">no calls</text>')
    parts.append("</svg>")
    return "".join(parts)
