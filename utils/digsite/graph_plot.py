"""Figures of a pruned attribution graph: interactive (plotly), static (SVG) and text (chapter 7).

Nodes sit at their position (x) and layer (y: embeddings at the bottom, the target on top);
edges are blue when they push their receiver up, red when down, wider when stronger. Feature
nodes are sized by their influence on the target and, given `FeatureContexts`, show their
top contexts on hover.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .feature_contexts import FeatureContexts
from .pruning import PrunedGraph

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _layout(pg: PrunedGraph) -> dict[int, tuple[float, float]]:
    """x (position, nodes of one cell spread out) and y (embeddings 0, layer l's features l + 1, target top)."""
    g = pg.graph
    cells: dict[tuple[int, int], list[int]] = {}
    for i in pg.nodes.nonzero()[:, 0].tolist():
        _kind, layer, pos, _ = g.node(i)
        cells.setdefault((layer, pos), []).append(i)
    xy = {}
    for (layer, pos), members in cells.items():
        members.sort(key=lambda i: (g.node(i)[0] == "error", -float(pg.influence[i])))
        m = len(members)
        for j, i in enumerate(members):
            dx = 0.0 if m == 1 else -0.38 + 0.76 * j / (m - 1)
            xy[i] = (pos + dx, layer + 1.0)
    return xy


def _edge_list(pg: PrunedGraph) -> list[tuple[int, int, float]]:
    e = pg.edges.nonzero().tolist()
    return [(s, t, pg.graph.adjacency[t, s].item()) for t, s in e]


def graph_figure(pg: PrunedGraph, contexts: FeatureContexts | None = None, title: str = "") -> go.Figure:
    """An interactive plotly figure of a pruned graph: nodes by layer (y) and position (x), edges blue (+)
    and red (−) with width by weight; hover a feature to see its activation, influence and top contexts.

    Renders offline in JupyterLab and Colab (plotly.js travels with the figure).
    """
    import plotly.graph_objects as go

    g = pg.graph
    xy = _layout(pg)
    edges = _edge_list(pg)
    wmax = max((abs(w) for *_, w in edges), default=1.0) or 1.0
    fig = go.Figure()
    for sign, colour in ((1, "rgba(40, 90, 200, {a})"), (-1, "rgba(210, 50, 40, {a})")):
        for lo, hi in ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.01)):
            xs: list = []
            ys: list = []
            for s, t, w in edges:
                if (w > 0) == (sign > 0) and lo <= abs(w) / wmax < hi and s in xy and t in xy:
                    xs += [xy[s][0], xy[t][0], None]
                    ys += [xy[s][1], xy[t][1], None]
            if xs:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        hoverinfo="skip",
                        showlegend=False,
                        line={"width": 0.5 + 5 * hi, "color": colour.format(a=0.25 + 0.6 * hi)},
                    )
                )
    for kind, symbol, colour in (
        ("feature", "circle", "#f39c12"),
        ("error", "square", "#95a5a6"),
        ("embedding", "diamond", "#16a085"),
        ("target", "star", "#8e44ad"),
    ):
        ids = [i for i in xy if g.node(i)[0] == kind]
        if not ids:
            continue
        texts = []
        for i in ids:
            _, layer, _pos, idx = g.node(i)
            lines = [html.escape(g.name(i)), f"value {g.values[i].item():.3g} · influence {pg.influence[i].item():.3f}"]
            if kind == "feature" and contexts is not None:
                lines.append(f"fires on {contexts.density(layer, idx):.1%} of tokens; top contexts:")
                lines += [f"{v:.2f}: {html.escape(c)}" for c, v in contexts.top(layer, idx, k=5)]
            texts.append("<br>".join(lines))
        size = [
            10 + 25 * min(1.0, pg.influence[i].item() / max(1e-9, pg.influence[: g.n_features].max().item()))
            if kind == "feature"
            else 14
            for i in ids
        ]
        fig.add_trace(
            go.Scatter(
                x=[xy[i][0] for i in ids],
                y=[xy[i][1] for i in ids],
                mode="markers",
                name=kind,
                marker={"symbol": symbol, "size": size, "color": colour, "line": {"width": 1, "color": "black"}},
                hovertext=texts,
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title or f"Attribution graph: {g.target_label} at position {g.target_pos}",
        xaxis={
            "tickvals": list(range(g.n_pos)),
            "ticktext": [f"{p}: {t.strip()}" for p, t in enumerate(g.str_tokens)],
            "tickangle": -45,
        },
        yaxis={
            "tickvals": list(range(g.n_layers + 2)),
            "ticktext": ["embeddings", *[f"layer {l}" for l in range(g.n_layers)], "target"],
        },
        height=520,
        plot_bgcolor="white",
        hoverlabel={"align": "left"},
        legend={"orientation": "h", "y": -0.35},
    )
    return fig


def graph_svg(pg: PrunedGraph, width: int = 900, height: int = 420) -> str:
    """A static SVG drawing of a pruned graph (same layout and colours as `graph_figure`), for saved views:
    display it with `IPython.display.SVG(graph_svg(pg))`."""
    g = pg.graph
    xy = _layout(pg)
    mx, my = 60, 30
    sx = (width - 2 * mx) / max(1, g.n_pos - 1)
    sy = (height - 2 * my - 40) / (g.n_layers + 1)

    def px(p: tuple[float, float]) -> tuple[float, float]:
        return mx + p[0] * sx, height - my - 40 - p[1] * sy

    edges = _edge_list(pg)
    wmax = max((abs(w) for *_, w in edges), default=1.0) or 1.0
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="10"><rect width="100%" height="100%" fill="white"/>'
        )
    ]
    for s, t, w in sorted(edges, key=lambda e: abs(e[2])):
        if s in xy and t in xy:
            (x1, y1), (x2, y2) = px(xy[s]), px(xy[t])
            c = "40,90,200" if w > 0 else "210,50,40"
            a = abs(w) / wmax
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                f'stroke="rgba({c},{0.2 + 0.7 * a:.2f})" stroke-width="{0.5 + 4 * a:.2f}"/>'
            )
    colours = {"feature": "#f39c12", "error": "#95a5a6", "embedding": "#16a085", "target": "#8e44ad"}
    for i, p in xy.items():
        x, y = px(p)
        kind = g.node(i)[0]
        r = (
            5
            if kind != "feature"
            else 4 + 8 * min(1.0, pg.influence[i].item() / max(1e-9, pg.influence[: g.n_features].max().item()))
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colours[kind]}" stroke="black" '
            f'stroke-width="0.5"><title>{html.escape(g.name(i))}</title></circle>'
        )
    for p, t in enumerate(g.str_tokens):
        x, y = px((p, 0))
        parts.append(
            f'<text x="{x:.1f}" y="{height - 18}" text-anchor="end" transform="rotate(-40 {x:.1f} '
            f'{height - 18})">{html.escape(t.strip())}</text>'
        )
    for lvl, name in enumerate(["emb", *[f"L{l}" for l in range(g.n_layers)], "target"]):
        x, y = px((0, lvl))
        parts.append(f'<text x="8" y="{y + 3:.1f}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def graph_text(pg: PrunedGraph, contexts: FeatureContexts | None = None, k: int = 10) -> str:
    """A text summary of a pruned graph: its size, the k most influential kept features (with their top
    context) and the k strongest kept edges."""
    g = pg.graph
    kept = pg.nodes[: g.n_features].nonzero()[:, 0]
    lines = [
        (
            f"{g.target_label} at position {g.target_pos} = {g.values[-1].item():.3f}; "
            f"{g.n_features} active features, {len(kept)} kept; {int(pg.edges.sum())} edges kept"
        ),
        "most influential features:",
    ]
    for i in sorted(kept.tolist(), key=lambda i: -pg.influence[i].item())[:k]:
        _, layer, _, idx = g.node(i)
        ctx = ""
        if contexts is not None:
            top = contexts.top(layer, idx, k=1)
            ctx = f"   e.g. {top[0][0]}" if top else ""
        lines.append(f"  {g.name(i):32s} act {g.values[i].item():6.2f}  influence {pg.influence[i].item():.3f}{ctx}")
    lines.append("strongest edges:")
    for s, t, w in sorted(_edge_list(pg), key=lambda e: -abs(e[2]))[:k]:
        lines.append(f"  {g.name(s):32s} -> {g.name(t):32s} {w:+.3f}")
    return "\n".join(lines)
