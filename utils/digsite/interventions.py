"""Testing an attribution graph by intervention: its prediction against the model run for real (chapter 7).

A graph is a claim about causes. `predicted_change` reads off the graph what clamping some
features to a multiple of their activation should do to the target (linear, with attention and
norms frozen); `actual_change` runs the local replacement model (transcoders plus the graph's
error vectors: unedited, it *is* the model on this prompt) with those features clamped, holding
more or less of the prompt fixed (`FREEZE_LEVELS`), and reads the target; `faithfulness` scores
their agreement over the most influential features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .attribution import Graph
from .pruning import influence_on
from .replacement import F64, frozen_ln
from .solutions.ch07 import predict_intervention
from .transcoders import Transcoders, mlp_input, mlp_names

if TYPE_CHECKING:
    from .hooks import HookedModel


def predicted_change(graph: Graph, nodes: Sequence[int], factor: float = 0.0) -> float:
    """The change of the target the linear graph predicts when features `nodes` are clamped to `factor` x their
    activation (0 ablates), every other feature responding along the graph's edges (attention and norms frozen).

    Each edited feature moves by (factor - 1) x its value; every other feature by the sum over its incoming
    feature edges of edge / source value x the source's move (exercise 7.8's `predict_intervention`).
    """
    nodes = [int(i) for i in nodes]
    if any(not 0 <= i < graph.n_features for i in nodes):
        raise ValueError(f"interventions act on feature nodes (0..{graph.n_features - 1}); got {nodes}")
    return predict_intervention(graph.adjacency, graph.values, graph.n_features, graph.target_index, nodes, factor)


FREEZE_LEVELS = ("none", "patterns", "norms", "patterns+norms", "all")


@torch.no_grad()
def actual_change(
    model: HookedModel, tc: Transcoders, graph: Graph, nodes: Sequence[int], factor: float = 0.0, freeze: str = "none"
) -> float:
    """The change of the target when the replacement model (transcoders + the graph's error vectors) runs with
    features `nodes` clamped to `factor` x their activation on the prompt (0 ablates; factor 2 doubles the
    clean value, whatever their inputs now say), against the same model unedited.

    freeze: what is held at the prompt's values while the edited model runs. "none": nothing (attention
    patterns, norm scales and which features fire all respond: the real test); "patterns": the attention
    patterns; "norms": every LayerNorm's scale; "patterns+norms": both (features still chosen by TopK);
    "all": both, and also every feature that fired keeps firing, at its pre-activation, and no other
    fires (the graph's own linear world, where its prediction is exact).
    """
    if freeze not in FREEZE_LEVELS:
        raise ValueError(f"freeze must be one of {FREEZE_LEVELS}, not {freeze!r}")
    edits: dict[int, list[tuple[int, int, float]]] = {}
    for i in nodes:
        kind, layer, pos, idx = graph.node(int(i))
        if kind != "feature":
            raise ValueError(f"interventions act on feature nodes; node {i} is a {kind}")
        edits.setdefault(layer, []).append((pos, idx, graph.values[int(i)].item()))
    base = _replacement_target(model, tc, graph, {}, factor, freeze)
    return _replacement_target(model, tc, graph, edits, factor, freeze) - base


def replacement_hooks(
    model: HookedModel,
    tc: Transcoders,
    graph: Graph,
    edits: dict[int, list[tuple[int, int, float]]] | None = None,
    factor: float = 0.0,
    freeze: str = "none",
) -> list:
    """Forward hooks that run the local replacement model of `graph`'s prompt: each MLP output becomes the
    transcoder's prediction (features at BOS off) plus the graph's error vector; `edits` maps a layer to
    (pos, feature, clean activation) triples, each clamped to factor x clean activation; `freeze` as in
    `actual_change`."""
    edits = edits or {}
    fm = graph.frozen
    inputs: dict[int, Tensor] = {}
    if freeze not in FREEZE_LEVELS:
        raise ValueError(f"freeze must be one of {FREEZE_LEVELS}, not {freeze!r}")
    patterns = freeze in ("patterns", "patterns+norms", "all")
    norms = freeze in ("norms", "patterns+norms", "all")
    masks = None
    if freeze == "all":
        masks = torch.zeros(tc.cfg.n_layers, graph.n_pos, tc.cfg.d_tc, dtype=torch.bool)
        masks[tuple(graph.features.T)] = True
    hooks = []
    for layer in range(tc.cfg.n_layers):
        mid, out = mlp_names(layer)

        def keep(x: Tensor, hook, layer: int = layer) -> None:
            if not norms:
                inputs[layer] = mlp_input(model, x, layer)
            else:
                inputs[layer] = frozen_ln(x.to(F64), fm.scale2[layer], fm.ln2_w[layer], fm.ln2_b[layer]).to(x.dtype)

        def replace(y: Tensor, hook, layer: int = layer) -> Tensor:
            x = inputs.pop(layer).to(tc.W_enc.dtype)
            if masks is None:
                f = tc.encode(x, layer).clone()
            else:
                f = tc.pre_acts(x, layer) * masks[layer].to(x.dtype)
            f[:, 0] = 0
            for pos, idx, clean in edits.get(layer, []):
                f[:, pos, idx] = factor * clean
            return (tc.decode(f, x, layer) + graph.errors[layer].to(f.dtype)).to(y.dtype)

        hooks += [(mid, keep), (out, replace)]
        if patterns:
            hooks.append((f"blocks.{layer}.attn.hook_pattern", _const_hook(fm.patterns[layer])))
        if norms:
            hooks.append((f"blocks.{layer}.ln1.hook_scale", _const_hook(fm.scale1[layer])))
    if norms:
        hooks.append(("ln_final.hook_scale", _const_hook(fm.scale_f)))
    return hooks


def _const_hook(value: Tensor):
    def hook(x: Tensor, hook) -> Tensor:
        return value.to(x.dtype).expand_as(x)

    return hook


def _replacement_target(model, tc, graph: Graph, edits, factor: float, freeze: str) -> float:
    with model.hooks(replacement_hooks(model, tc, graph, edits, factor, freeze)):
        logits = model(graph.tokens[None].to(model.device))[0, graph.target_pos]
    return (logits.to(F64).cpu() @ graph.target_weights).item()


def faithfulness(
    model: HookedModel, tc: Transcoders, graph: Graph, n: int = 10, factor: float = 0.0, freeze: str = "none"
) -> dict[str, object]:
    """Test the graph by intervention: ablate (factor 0) or scale each of the `n` features most influential on the
    target, one at a time, then all of them together; compare the graph's predicted change of the target
    with the actual change in the replacement model (`freeze` as in `actual_change`).

    Returns nodes, predicted, actual (lists, singles first, the group last), and faithfulness =
    1 - sum |predicted - actual| / sum |actual| (1: the graph predicts every intervention exactly).
    """
    inf = influence_on(graph.adjacency, graph.target_index)[: graph.n_features]
    top = inf.argsort(descending=True)[: min(n, graph.n_features)].tolist()
    sets = [[i] for i in top] + [top]
    pred = [predicted_change(graph, s, factor) for s in sets]
    act = [actual_change(model, tc, graph, s, factor, freeze) for s in sets]
    err = sum(abs(p - a) for p, a in zip(pred, act))
    total = sum(abs(a) for a in act)
    return {
        "nodes": top,
        "predicted": pred,
        "actual": act,
        "faithfulness": 1 - err / total if total > 0 else float("nan"),
    }
