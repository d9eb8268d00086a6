"""Checks for chapter 7: transcoders and attribution graphs.

Every check computes its reference first, from pristine inputs, then hands the learner's
function deep copies and verifies afterwards that nothing it was given changed in place.
Each runs at least two independent cases that differ in shape and in every argument: random
transcoders with non-zero biases, tiny random GPT-2 models (2 and 3 layers, non-zero biases and
norm weights) whose attribution graphs come from `digsite.attribution`, random DAGs, both signs
of edge weights and of steering factors. References are the package's own functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from ..attribution import (
    FrozenModel,
    Graph,
    attribution_graph,
    frozen_forward,
    influence_on,
    label_feature,
    linear_prediction,
    normalized_adjacency,
    prune_adjacency,
    strongest_path,
)
from ..transcoders import TranscoderConfig, Transcoders
from ..transcoders import transcoder_loss as transcoder_loss_ref
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)
    return a == b


def _call(fn: Callable, names: list[str], *args: Any) -> Any:
    """Run the learner on deep copies of args; fail, naming the argument, if one was changed in place."""
    given = copy.deepcopy(args)
    out = run_learner(fn, *given)
    for name, g, p in zip(names, given, args):
        if not _same(g, p):
            raise CheckFailed(f"`{getattr(fn, '__name__', 'your function')}` changed its argument `{name}` in place. "
                              "Later cells reuse it: work on a copy (`.clone()`, or build a new tensor).")
    return out


# --- 7.1 the transcoder's forward pass -----------------------------------------------------------


def _tc_from(W_enc, b_enc, W_dec, b_dec, W_skip, k) -> Transcoders:
    tc = Transcoders(TranscoderConfig(1, W_enc.shape[0], W_enc.shape[1], k))
    with torch.no_grad():
        for name, w in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec), ("W_skip", W_skip)):
            getattr(tc, name).copy_(w[None])
    return tc


def transcoder_forward_ref(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, W_skip: Tensor,
                           k: int) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        return _tc_from(W_enc, b_enc, W_dec, b_dec, W_skip, k)(x, 0)


def _fwd_no_skip(x, W_enc, b_enc, W_dec, b_dec, W_skip, k):
    f, _ = transcoder_forward_ref(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)
    return f, f @ W_dec + b_dec


def _fwd_relu_only(x, W_enc, b_enc, W_dec, b_dec, W_skip, k):
    f = torch.relu(x @ W_enc + b_enc)
    return f, f @ W_dec + b_dec + x @ W_skip


def _fwd_abs_topk(x, W_enc, b_enc, W_dec, b_dec, W_skip, k):
    pre = x @ W_enc + b_enc
    _, idx = pre.abs().topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, torch.relu(pre.gather(-1, idx)))
    return f, f @ W_dec + b_dec + x @ W_skip


def _fwd_skip_from_output(x, W_enc, b_enc, W_dec, b_dec, W_skip, k):
    f, _ = transcoder_forward_ref(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)
    y = f @ W_dec + b_dec
    return f, y + y @ W_skip


@exercise_check(
    reference=transcoder_forward_ref,
    wrong_answers={
        "You left out the linear skip: the prediction needs `x @ W_skip` added to the decoded features.": _fwd_no_skip,
        "You kept every positive feature: only the k largest pre-activations may fire (TopK).": _fwd_relu_only,
        "You picked the k largest pre-activations by absolute value; pick the k largest values (after the ReLU).": _fwd_abs_topk,
        "The skip reads the MLP's input x, not the decoded output.": _fwd_skip_from_output,
    },
)
def check_transcoder_forward(transcoder_forward) -> None:
    """`transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)` -> (features, predicted MLP output)."""
    for seed, shape, d, n, k in ((0, (1, 5), 8, 16, 3), (1, (3, 4), 12, 40, 7)):
        g = _gen(seed)
        x = torch.randn(*shape, d, generator=g)
        W_enc = torch.randn(d, n, generator=g) / d**0.5
        b_enc = torch.randn(n, generator=g) * 0.3
        W_dec = torch.randn(n, d, generator=g)
        b_dec = torch.randn(d, generator=g)
        W_skip = torch.randn(d, d, generator=g) / d**0.5
        args = (x, W_enc, b_enc, W_dec, b_dec, W_skip, k)
        f_ref, y_ref = transcoder_forward_ref(*args)
        out = _call(transcoder_forward, ["x", "W_enc", "b_enc", "W_dec", "b_dec", "W_skip", "k"], *args)
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed("Return a pair (features, predicted MLP output).")
        assert_close(out[0], f_ref, what=f"the features, x of shape {tuple(x.shape)}, k={k}")
        assert_close(out[1], y_ref, what=f"the predicted MLP output, x of shape {tuple(x.shape)}, k={k}")


# --- 7.2 the loss --------------------------------------------------------------------------------


def _loss_plain(y, y_hat):
    return (y_hat - y).pow(2).mean()


def _loss_uncentred(y, y_hat):
    return (y_hat - y).pow(2).mean() / y.pow(2).mean()


def _loss_sum(y, y_hat):
    return (y_hat - y).pow(2).sum(-1).mean() / (y - y.mean(0)).pow(2).mean()


@exercise_check(
    reference=transcoder_loss_ref,
    wrong_answers={
        "This is the plain mean squared error: divide it by the variance of the target.": _loss_plain,
        "You divided by the mean square of y; centre y first (subtract its mean over tokens), so the "
        "baseline is predicting the mean.": _loss_uncentred,
        "You summed the squared error over d_model but averaged the variance: average both per element.": _loss_sum,
    },
)
def check_transcoder_loss(transcoder_loss) -> None:
    """`transcoder_loss(y, y_hat)`: MSE per element divided by the variance of y (1 = as bad as the mean)."""
    for seed, n, d, shift in ((2, 50, 6, 3.0), (3, 9, 16, -1.5)):
        g = _gen(seed)
        y = torch.randn(n, d, generator=g) * 2 + shift
        y_hat = y + torch.randn(n, d, generator=g) * 0.7
        ref = transcoder_loss_ref(y, y_hat)
        assert_close(_call(transcoder_loss, ["y", "y_hat"], y, y_hat), ref, what=f"the loss on ({n}, {d}) tokens")


# --- tiny random graphs for 7.3 - 7.6 and 7.8 ----------------------------------------------------


@lru_cache(maxsize=4)
def _tiny_graph(seed: int) -> tuple[Graph, Transcoders]:
    """The attribution graph of a random prompt in a tiny random GPT-2 with random transcoders (all biases non-zero)."""
    from ..organisms.tokenizer import build_tokenizer

    n_layers, d, n_pos, d_tc, k = ((2, 16, 6, 24, 4), (3, 24, 8, 32, 5))[seed % 2]
    tok = build_tokenizer()
    model = seeded_gpt2(tok, seed=seed, vocab_size=len(tok), n_positions=32, n_embd=d, n_layer=n_layers, n_head=2,
                        n_inner=2 * d, bos_token_id=1, eos_token_id=1, initializer_range=0.2)
    g = _gen(100 + seed)
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif ".ln_" in name or "ln_f" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
    tc = Transcoders(TranscoderConfig(n_layers, d, d_tc, k), seed=seed)
    with torch.no_grad():
        tc.W_enc.mul_(2.0)
        tc.b_enc.copy_(torch.randn(tc.b_enc.shape, generator=g) * 0.1 + 0.2)
        tc.b_dec.copy_(torch.randn(tc.b_dec.shape, generator=g) * 0.1)
        tc.W_skip.copy_(torch.randn(tc.W_skip.shape, generator=g) * 0.1)
    tokens = torch.cat([torch.tensor([1]), torch.randint(3, len(tok), (n_pos - 1,), generator=g)])
    target = torch.zeros(len(tok))
    target[int(tokens[1])], target[int(tokens[2])] = 1.0, -1.0
    return attribution_graph(model, tc, tokens, target), tc


def _activations_list(graph: Graph, d_tc: int) -> list[Tensor]:
    acts = [torch.zeros(graph.n_pos, d_tc, dtype=torch.float64) for _ in range(graph.n_layers)]
    for (l, p, i), a in zip(graph.features.tolist(), graph.activations):
        acts[l][p, i] = a
    return acts


def _inputs(seed: int) -> tuple[Graph, FrozenModel, Tensor, list[Tensor], Tensor]:
    graph, tc = _tiny_graph(seed)
    return graph, graph.frozen, graph.embeddings, _activations_list(graph, tc.cfg.d_tc), graph.errors


# --- 7.3 the direct effect between two features --------------------------------------------------


def direct_effect_ref(fm: FrozenModel, embeddings: Tensor, activations: list[Tensor], errors: Tensor,
                      source: tuple[int, int, int], receiver: tuple[int, int, int]) -> float:
    pres, _ = frozen_forward(fm, embeddings, activations, list(errors))
    removed = [a.clone() for a in activations]
    removed[source[0]][source[1], source[2]] = 0
    pres2, _ = frozen_forward(fm, embeddings, removed, list(errors))
    return (pres[receiver[0]][receiver[1], receiver[2]] - pres2[receiver[0]][receiver[1], receiver[2]]).item()


def _de_full(fm, embeddings, activations, errors, source, receiver):
    pres, _ = frozen_forward(fm, embeddings, activations, list(errors))
    return pres[receiver[0]][receiver[1], receiver[2]].item()


def _de_flipped(fm, embeddings, activations, errors, source, receiver):
    return -direct_effect_ref(fm, embeddings, activations, errors, source, receiver)


def _de_times_activation(fm, embeddings, activations, errors, source, receiver):
    a = activations[source[0]][source[1], source[2]].item()
    return a * direct_effect_ref(fm, embeddings, activations, errors, source, receiver)


@exercise_check(
    reference=direct_effect_ref,
    wrong_answers={
        "You returned the receiver's whole pre-activation; the direct effect is how much of it the source "
        "supplies (with the source minus without it).": _de_full,
        "The sign is flipped: compute (with the source) minus (without the source).": _de_flipped,
        "You multiplied by the source's activation again; removing the source already accounts for it.": _de_times_activation,
    },
)
def check_direct_effect(direct_effect) -> None:
    """`direct_effect(fm, embeddings, activations, errors, source, receiver)`: the linearised effect of one feature on another."""
    for seed in (0, 1):
        graph, fm, emb, acts, errs = _inputs(seed)
        pairs = []
        for t in range(graph.n_features):
            for s in range(graph.n_features):
                if graph.adjacency[t, s] != 0:
                    pairs.append((s, t))
        if not pairs:
            raise RuntimeError("the check's tiny graph has no feature-to-feature edge")
        for s, t in (pairs[0], pairs[len(pairs) // 2], pairs[-1]):
            src, rcv = tuple(graph.features[s].tolist()), tuple(graph.features[t].tolist())
            ref = graph.adjacency[t, s].item()
            got = _call(direct_effect, ["fm", "embeddings", "activations", "errors", "source", "receiver"],
                        fm, emb, acts, errs, src, rcv)
            assert_close(got, ref, what=f"the direct effect of feature {src} on feature {rcv} "
                                        f"({graph.n_layers}-layer model)", atol=1e-6, rtol=1e-5)


# --- 7.4 the adjacency matrix ---------------------------------------------------------------------


def adjacency_matrix_ref(fm: FrozenModel, embeddings: Tensor, activations: list[Tensor], errors: Tensor,
                         features: Tensor, target_weights: Tensor, target_pos: int) -> Tensor:
    """By removal: each source's column is (receivers with every source) - (receivers without it)."""
    L, P = len(activations), len(embeddings)
    nF = len(features)
    n = nF + (L + 1) * P + 1

    def receivers(acts, errs, emb) -> Tensor:
        pres, tgt = frozen_forward(fm, emb, acts, list(errs), target_weights)
        return torch.cat([torch.stack([pres[l][p, i] for l, p, i in features.tolist()]) if nF else
                          torch.zeros(0, dtype=torch.float64), tgt[target_pos, None]])

    base = receivers(activations, errors, embeddings)
    A = torch.zeros(n, n, dtype=torch.float64)
    rows = list(range(nF)) + [n - 1]
    for s, (l, p, i) in enumerate(features.tolist()):
        acts = [a.clone() for a in activations]
        acts[l][p, i] = 0
        A[rows, s] = base - receivers(acts, errors, embeddings)
    for l in range(L):
        for p in range(P):
            errs = errors.clone()
            errs[l, p] = 0
            A[rows, nF + l * P + p] = base - receivers(activations, errs, embeddings)
    for p in range(P):
        emb = embeddings.clone()
        emb[p] = 0
        A[rows, nF + L * P + p] = base - receivers(activations, errors, emb)
    return A


def _adj_transposed(*args):
    return adjacency_matrix_ref(*args).T


def _adj_no_embeddings(fm, embeddings, activations, errors, features, target_weights, target_pos):
    A = adjacency_matrix_ref(fm, embeddings, activations, errors, features, target_weights, target_pos)
    P, L = len(embeddings), len(activations)
    A[:, len(features) + L * P: -1] = 0
    return A


def _adj_no_target(*args):
    A = adjacency_matrix_ref(*args)
    A[-1] = 0
    return A


@exercise_check(
    reference=adjacency_matrix_ref,
    wrong_answers={
        "Rows and columns are swapped: adjacency[t, s] is the effect OF source s ON receiver t (rows receive).": _adj_transposed,
        "The embedding columns are empty: the token + position embeddings are sources too.": _adj_no_embeddings,
        "The target's row is empty: the target is a receiver like the features.": _adj_no_target,
    },
)
def check_adjacency_matrix(adjacency_matrix) -> None:
    """`adjacency_matrix(fm, embeddings, activations, errors, features, target_weights, target_pos)` -> (n, n)."""
    for seed in (0, 1):
        graph, fm, emb, acts, errs = _inputs(seed)
        ref = graph.adjacency
        got = _call(adjacency_matrix, ["fm", "embeddings", "activations", "errors", "features", "target_weights",
                                       "target_pos"], fm, emb, acts, errs, graph.features, graph.target_weights,
                    graph.target_pos)
        assert_close(got, ref, what=f"the adjacency matrix of a {graph.n_layers}-layer, {graph.n_pos}-token graph",
                     atol=1e-6, rtol=1e-5)


# --- 7.5 influence ---------------------------------------------------------------------------------


def _random_dag(seed: int, n: int, density: float) -> Tensor:
    g = _gen(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < density)
    return A.tril(-1)


def _inf_signed(adjacency, target):
    A = adjacency / adjacency.abs().sum(1, keepdim=True).clamp_min(1e-300)
    cur, total = A[target].clone(), torch.zeros(len(A), dtype=A.dtype)
    for _ in range(len(A)):
        total += cur
        cur = cur @ A
    return total


def _inf_unnormalised(adjacency, target):
    A = adjacency.abs()
    cur, total = A[target].clone(), torch.zeros(len(A), dtype=A.dtype)
    for _ in range(len(A)):
        total += cur
        cur = cur @ A
    return total


def _inf_direct_only(adjacency, target):
    return normalized_adjacency(adjacency)[target].clone()


@exercise_check(
    reference=influence_on,
    wrong_answers={
        "Take absolute values before normalising: influence counts how much, not which way.": _inf_signed,
        "Normalise each row of |A| to sum to 1 first, so that influences are shares.": _inf_unnormalised,
        "You kept only direct edges into the target; add the paths through other nodes (A + A² + A³ + …).": _inf_direct_only,
    },
)
def check_influence(influence) -> None:
    """`influence(adjacency, target)`: each node's summed influence on the target over all paths."""
    cases = [(_random_dag(5, 7, 0.6), 6), (_random_dag(6, 12, 0.35), 10), (_tiny_graph(1)[0].adjacency, None)]
    for A, target in cases:
        target = len(A) - 1 if target is None else target
        ref = influence_on(A, target)
        assert_close(_call(influence, ["adjacency", "target"], A, target), ref,
                     what=f"the influences on node {target} of a {len(A)}-node graph", atol=1e-9, rtol=1e-7)


# --- 7.6 pruning -----------------------------------------------------------------------------------


def prune_graph_ref(adjacency: Tensor, n_features: int, target: int, node_threshold: float,
                    edge_threshold: float) -> tuple[Tensor, Tensor]:
    return prune_adjacency(adjacency, n_features, target, node_threshold, edge_threshold)


def _prune_everything(adjacency, n_features, target, node_threshold, edge_threshold):
    inf = influence_on(adjacency, target)
    n = len(adjacency)
    keep = torch.zeros(n, dtype=torch.bool)
    order = inf.argsort(descending=True)
    cum = inf[order].cumsum(0) / inf.sum()
    keep[order[: int((cum < node_threshold).sum()) + 1]] = True
    keep[target] = True
    A = adjacency * keep[:, None] * keep[None, :]
    return prune_adjacency(A, n_features, target, 1.0, edge_threshold)


def _prune_raw_edges(adjacency, n_features, target, node_threshold, edge_threshold):
    nodes, _ = prune_adjacency(adjacency, n_features, target, node_threshold, 1.0)
    A = adjacency.abs() * nodes[:, None] * nodes[None, :]
    flat = A.flatten()
    order = flat.argsort(descending=True)
    cum = flat[order].cumsum(0) / flat.sum()
    edges = torch.zeros_like(flat, dtype=torch.bool)
    edges[order[: int((cum < edge_threshold).sum()) + 1]] = True
    edges = edges.reshape(A.shape) & (A != 0)
    return nodes, edges


def _prune_per_node(adjacency, n_features, target, node_threshold, edge_threshold):
    inf = influence_on(adjacency, target)
    A = adjacency.clone()
    drop = torch.zeros(len(A), dtype=torch.bool)
    drop[:n_features] = inf[:n_features] < (1 - node_threshold) * inf[:n_features].max()
    A[drop] = 0
    A[:, drop] = 0
    return prune_adjacency(A, n_features, target, 1.0, edge_threshold)


@exercise_check(
    reference=prune_graph_ref,
    wrong_answers={
        "Only feature nodes are pruned as nodes: keep every error and embedding node (prune their edges instead).":
            _prune_everything,
        "An edge's score is its normalised weight times its receiver's influence on the target, not its raw weight.":
            _prune_raw_edges,
        "Keep features in order of influence until their cumulative share reaches the threshold, not by a "
        "cut-off relative to the strongest one.": _prune_per_node,
    },
)
def check_prune_graph(prune_graph) -> None:
    """`prune_graph(adjacency, n_features, target, node_threshold, edge_threshold)` -> (nodes, edges) masks."""
    cases = [(_tiny_graph(0)[0], 0.8, 0.98), (_tiny_graph(1)[0], 0.6, 0.9)]
    for graph, nt, et in cases:
        args = (graph.adjacency, graph.n_features, graph.target_index, nt, et)
        nodes, edges = prune_graph_ref(*args)
        out = _call(prune_graph, ["adjacency", "n_features", "target", "node_threshold", "edge_threshold"], *args)
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed("Return a pair (nodes, edges) of boolean masks.")
        what = f"({graph.n_layers}-layer graph, thresholds {nt}, {et})"
        for got, ref, name in ((out[0], nodes, "nodes"), (out[1], edges, "edges")):
            if not isinstance(got, Tensor) or got.dtype != torch.bool:
                raise CheckFailed(f"The kept {name} must be a boolean tensor (a mask), got {type(got).__name__} "
                                  f"{getattr(got, 'dtype', '')}.")
            assert_close(got.long(), ref.long(), what=f"the kept {name} (1 = kept) {what}")


# --- 7.7 labelling a feature ----------------------------------------------------------------------


def _label_all_firing(acts, labels, top_k):
    return label_feature(acts, labels, top_k=acts.numel())


def _label_share_of_k(acts, labels, top_k):
    lab, share = label_feature(acts, labels, top_k)
    n = min(top_k, int((acts > 0).sum()))
    return lab, share * n / top_k


def _label_bottom(acts, labels, top_k):
    return label_feature(-acts + acts.max() + 1e-3, labels, top_k)


def _label_case(seed: int, n_seq: int, pos: int, n_fire: int) -> tuple[Tensor, list[list[str]]]:
    g = _gen(seed)
    cats = ["name", "place", "animal (member)", "END", "'the'"]
    labels = [[cats[int(j)] for j in torch.randint(0, len(cats), (pos,), generator=g)] for _ in range(n_seq)]
    acts = torch.zeros(n_seq, pos)
    flat = torch.randperm(n_seq * pos, generator=g)[:n_fire]
    acts.view(-1)[flat] = torch.rand(n_fire, generator=g) + 0.1
    strong = [(s, p) for s in range(n_seq) for p in range(pos) if labels[s][p] == "place"][:4]
    for s, p in strong:  # the strongest activations are all on places
        acts[s, p] = 5 + torch.rand(1, generator=g).item()
    return acts, labels


@exercise_check(
    reference=label_feature,
    wrong_answers={
        "You counted every token where the feature fires; count only its top_k strongest activations.": _label_all_firing,
        "The share is over the tokens you counted (fewer than top_k when the feature fires less often).": _label_share_of_k,
        "You took the weakest activations: sort from the largest down.": _label_bottom,
    },
)
def check_feature_label(feature_label) -> None:
    """`feature_label(acts, labels, top_k)` -> (the most common label among the top_k activations, its share)."""
    for seed, n_seq, pos, n_fire, k in ((0, 6, 10, 30, 5), (1, 3, 7, 6, 15)):
        acts, labels = _label_case(seed, n_seq, pos, n_fire)
        ref = label_feature(acts, labels, k)
        got = _call(feature_label, ["acts", "labels", "top_k"], acts, labels, k)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed("Return a pair (label, share).")
        assert_close(got[0], ref[0], what=f"the label (top_k={k}, {n_fire} firing tokens)")
        assert_close(float(got[1]), ref[1], what=f"the share (top_k={k}, {n_fire} firing tokens)")


# --- 7.8 the graph's prediction of an intervention -------------------------------------------------


def _pred_direct_only(adjacency, values, n_features, target, nodes, factor):
    nodes = list(nodes)
    return sum(((factor - 1.0) * adjacency[target, i]).item() for i in nodes)


def _pred_factor_not_delta(adjacency, values, n_features, target, nodes, factor):
    return linear_prediction(adjacency, values, n_features, target, nodes, factor + 1.0)


def _pred_not_per_unit(adjacency, values, n_features, target, nodes, factor):
    v = values.clone()
    v[:n_features] = 1.0
    idx = list(nodes)
    fixed = (factor - 1.0) * values[idx]
    delta = torch.zeros(len(adjacency), dtype=adjacency.dtype)
    A = adjacency.clone()
    A[:, n_features:] = 0
    for _ in range(len(A)):
        delta[idx] = fixed
        delta = A @ delta
    delta[idx] = fixed
    return (A[target] @ delta).item()


@exercise_check(
    reference=linear_prediction,
    wrong_answers={
        "You kept only the edited features' direct edges into the target; the other features respond too, "
        "and pass the change on along their own edges.": _pred_direct_only,
        "Multiplying a feature by `factor` changes it by (factor − 1) × its value, not factor × its value.":
            _pred_factor_not_delta,
        "An edge is the effect of its source at its present value: divide by the source's activation to get "
        "the effect per unit before multiplying by the change.": _pred_not_per_unit,
    },
)
def check_predict_intervention(predict_intervention) -> None:
    """`predict_intervention(adjacency, values, n_features, target, nodes, factor)` -> the predicted change."""
    for seed, factor, which in ((0, 0.0, slice(0, 1)), (1, -1.5, slice(0, 3))):
        graph = _tiny_graph(seed)[0]
        inf = influence_on(graph.adjacency, graph.target_index)[: graph.n_features]
        nodes = inf.argsort(descending=True)[which].tolist()
        args = (graph.adjacency, graph.values, graph.n_features, graph.target_index, nodes, factor)
        ref = linear_prediction(*args)
        got = _call(predict_intervention, ["adjacency", "values", "n_features", "target", "nodes", "factor"], *args)
        assert_close(got, ref, what=f"the predicted change for features {nodes} times {factor}", atol=1e-6, rtol=1e-5)


# --- 7.9 the strongest path -------------------------------------------------------------------------


def _path_greedy(adjacency, target, sources):
    A = normalized_adjacency(adjacency)
    node, path = target, [target]
    srcs = set(sources)
    while node not in srcs:
        node = int(A[node].argmax())
        path.append(node)
        if A[node].sum() == 0 and node not in srcs:
            break
    return path[::-1]


def _path_raw(adjacency, target, sources):
    A = adjacency.abs()
    return _max_product_path(A / A.max(), target, sources)


def _max_product_path(W, target, sources):
    n = len(W)
    best = torch.zeros(n, dtype=W.dtype)
    best[target] = 1.0
    nxt = torch.full((n,), -1, dtype=torch.long)
    for _ in range(n):
        val, arg = (W * best[:, None]).max(0)
        val[target] = 1.0
        better = val > best
        best, nxt = torch.where(better, val, best), torch.where(better, arg, nxt)
    src = torch.tensor(list(sources))
    node = int(src[best[src].argmax()])
    path = [node]
    while node != target:
        node = int(nxt[node])
        path.append(node)
    return path


def _path_reversed(adjacency, target, sources):
    return strongest_path(adjacency, target, sources)[::-1]


@exercise_check(
    reference=strongest_path,
    wrong_answers={
        "Walking back from the target along the strongest incoming edge is greedy: a weak first step can "
        "lead to the strongest path. Compute, for every node, the best product to the target.": _path_greedy,
        "Use the normalised adjacency (each row of |A| sums to 1), not raw weights: large activations "
        "should not win by size alone.": _path_raw,
        "List the path from the source to the target.": _path_reversed,
    },
)
def check_strongest_path(strongest_path_fn) -> None:
    """`strongest_path(adjacency, target, sources)` -> the nodes of the max-product path, source first."""
    A1 = torch.zeros(6, 6, dtype=torch.float64)  # greedy fails here: 5 <- 3 strongest, but 3's inputs are split
    A1[5, 3], A1[5, 4] = 0.6, 0.4
    A1[3, 0], A1[3, 1], A1[3, 2] = 1.0, 1.0, 1.0
    A1[4, 2] = 2.0
    A1[4, 0] = 0.0001
    A2 = torch.zeros(5, 5, dtype=torch.float64)  # raw weights favour 0 -> 2 -> 4, shares favour 0 -> 3 -> 4
    A2[4, 2], A2[4, 3] = 10.0, 1.0
    A2[2, 0], A2[2, 1] = 1.0, 100.0
    A2[3, 0] = 0.001
    cases = [(A1, 5, [0, 1, 2]), (A2, 4, [0]), (_tiny_graph(1)[0].adjacency, None, None)]
    for A, target, sources in cases:
        if target is None:
            g = _tiny_graph(1)[0]
            target, sources = g.target_index, [g.embedding_index(p) for p in range(g.n_pos)]
        ref = strongest_path(A, target, sources)
        got = _call(strongest_path_fn, ["adjacency", "target", "sources"], A, target, sources)
        if not isinstance(got, list):
            raise CheckFailed(f"Return a list of node indices, not a {type(got).__name__}.")
        assert_close([int(i) for i in got], ref, what=f"the strongest path in a {len(A)}-node graph")
