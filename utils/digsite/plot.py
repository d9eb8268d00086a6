"""Plotting helpers: plotly figures from tensors, and circuitsvis figures that render offline.

Every function takes tensors (any device, with or without grad) and returns a figure
object; a notebook shows it by leaving it as the cell's last expression.
"""

from __future__ import annotations

from typing import Sequence

import plotly.express as px
import plotly.graph_objects as go
import torch


def _np(x):
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else x


def imshow(
    values: torch.Tensor,
    x: Sequence[str] | None = None,
    y: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    diverging: bool = True,
    zmax: float | None = None,
    text: bool = False,
    colorbar: str = "",
) -> go.Figure:
    """A heatmap of a 2-D tensor (rows, cols); diverging colours centred on 0 unless `diverging=False`."""
    arr = _np(values)
    if arr.ndim != 2:
        raise ValueError(f"imshow expects a 2-D tensor (rows, cols), got shape {tuple(arr.shape)}")
    kwargs = dict(color_continuous_scale="RdBu", color_continuous_midpoint=0.0) if diverging else {}
    if zmax is not None:
        kwargs["range_color"] = (-zmax if diverging else 0, zmax)
    fig = px.imshow(
        arr,
        x=list(x) if x is not None else None,
        y=list(y) if y is not None else None,
        labels=dict(x=xlabel, y=ylabel, color=colorbar),
        title=title,
        aspect="auto",
        text_auto=".2f" if text else False,
        **kwargs,
    )
    # Repeated labels (the same token twice in a prompt) must stay separate columns. Only labelled
    # axes: plotly.js fails to draw a heatmap on a category axis that has no labels.
    if x is not None:
        fig.update_xaxes(type="category")
    if y is not None:
        fig.update_yaxes(type="category")
    return fig


def line(
    ys: torch.Tensor | dict[str, torch.Tensor],
    x: Sequence | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
) -> go.Figure:
    """One line per entry of `ys` (a 1-D tensor, or a dict label -> 1-D tensor)."""
    series = ys if isinstance(ys, dict) else {"": ys}
    fig = go.Figure()
    for label, y in series.items():
        y = _np(y)
        fig.add_trace(go.Scatter(x=list(x) if x is not None else list(range(len(y))), y=y, mode="lines", name=label))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, showlegend=len(series) > 1)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def scatter(
    x: torch.Tensor,
    y: torch.Tensor,
    labels: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    diagonal: bool = False,
) -> go.Figure:
    """A scatter plot of two 1-D tensors, hover labels optional, with the y = x line if `diagonal`."""
    xs, ys = _np(x).ravel(), _np(y).ravel()
    hover = list(labels) if labels is not None else None
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", text=hover, showlegend=False))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel)
    if diagonal:
        lo, hi = float(min(xs.min(), ys.min())), float(max(xs.max(), ys.max()))
        fig.add_trace(
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dot", color="gray"), showlegend=False)
        )
    return fig


def histogram(
    values: torch.Tensor, nbins: int = 40, title: str = "", xlabel: str = "", ylabel: str = "count"
) -> go.Figure:
    """A histogram of any tensor's values (flattened), without pandas."""
    fig = go.Figure(go.Histogram(x=_np(values).ravel(), nbinsx=nbins))
    return fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, showlegend=False)


def attention_heads(pattern: torch.Tensor, str_tokens: Sequence[str], head_names: Sequence[str] | None = None):
    """circuitsvis's per-head attention viewer. pattern: (head, q_pos, k_pos) for one prompt.

    Returns a figure that always carries its own JavaScript, so it renders offline.
    """
    import circuitsvis as cv

    from .notebook import force_inline_circuitsvis

    force_inline_circuitsvis()
    if pattern.ndim != 3:
        raise ValueError(f"pattern must be (head, q_pos, k_pos) for one prompt, got shape {tuple(pattern.shape)}")
    if pattern.shape[-1] != len(str_tokens):
        raise ValueError(f"pattern has {pattern.shape[-1]} key positions but {len(str_tokens)} tokens were given")
    names = list(head_names) if head_names is not None else [f"H{h}" for h in range(pattern.shape[0])]
    return cv.attention.attention_heads(attention=_np(pattern), tokens=list(str_tokens), attention_head_names=names)


def colored_tokens(str_tokens: Sequence[str], values: torch.Tensor):
    """circuitsvis's token colouring: one value per token (e.g. a latent's activation). values: (pos,)."""
    import circuitsvis as cv

    from .notebook import force_inline_circuitsvis

    force_inline_circuitsvis()
    if len(str_tokens) != values.shape[-1]:
        raise ValueError(f"{len(str_tokens)} tokens but {values.shape[-1]} values")
    return cv.tokens.colored_tokens(tokens=list(str_tokens), values=_np(values).tolist())
