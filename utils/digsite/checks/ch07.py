"""Checks for chapter 7: transcoders and attribution graphs.

Each check hands `verify` (in `checks.core`) at least two independent cases that differ in shape
and in every argument: random transcoders with non-zero biases, tiny random GPT-2 models (2 and
3 layers, non-zero biases and norm weights, cached by `digsite.fixtures`) whose attribution graphs
come from `digsite.attribution`, random DAGs, both signs of edge weights and of the change an
intervention makes. The references are the course's own solutions (`digsite.solutions.ch07`).
"""

from __future__ import annotations

from functools import cache, lru_cache

import torch
from torch import Tensor

from ..attribution import Graph, attribution_graph
from ..fixtures import tiny_gpt2, toy_tokenizer
from ..replacement import FrozenModel, frozen_forward
from ..solutions.ch07 import (
    adjacency_matrix,
    direct_effect,
    feature_label,
    influence,
    normalized_adjacency,
    predict_intervention,
    prune_graph,
    strongest_path,
    transcoder_forward,
    transcoder_loss,
)
from ..transcoders import TranscoderConfig, Transcoders
from .core import exercise_check, verify


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 7.1 the transcoder's forward pass -----------------------------------------------------------


def _fwd_no_skip(x, W_enc, b_enc, W_dec, b_dec, W_skip, k):
    f, _ = transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)
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
    f, _ = transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)
    y = f @ W_dec + b_dec
    return f, y + y @ W_skip


@exercise_check(
    reference=transcoder_forward,
    wrong_answers={
        "You left out the linear skip: the prediction needs `x @ W_skip` added to the decoded features.": _fwd_no_skip,
        "You kept every positive feature: only the k largest pre-activations may fire (TopK).": _fwd_relu_only,
        "You picked the k largest pre-activations by absolute value; pick the k largest values (after the ReLU).": _fwd_abs_topk,
        "Your skip reads the decoded output; it reads the MLP's input x, the same vector the encoder reads.": _fwd_skip_from_output,
    },
)
def check_transcoder_forward(fn) -> None:
    """`transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip, k)` -> (features, predicted MLP output)."""
    for seed, shape, d, n, k in ((0, (1, 5), 8, 16, 3), (1, (3, 4), 12, 40, 7)):
        g = _gen(seed)
        x = torch.randn(*shape, d, generator=g)
        W_enc = torch.randn(d, n, generator=g) / d**0.5
        b_enc = torch.randn(n, generator=g) * 0.3
        W_dec = torch.randn(n, d, generator=g)
        b_dec = torch.randn(d, generator=g)
        W_skip = torch.randn(d, d, generator=g) / d**0.5
        verify(
            fn,
            x,
            W_enc,
            b_enc,
            W_dec,
            b_dec,
            W_skip,
            k,
            what=f"(features, predicted MLP output) for x of shape {tuple(x.shape)}, k={k}",
            why="Return a pair (features, predicted MLP output): later cells unpack it.",
        )


# --- 7.2 the loss --------------------------------------------------------------------------------


def _loss_plain(y, y_hat):
    return (y_hat - y).pow(2).mean()


def _loss_uncentred(y, y_hat):
    return (y_hat - y).pow(2).mean() / y.pow(2).mean()


def _loss_sum(y, y_hat):
    return (y_hat - y).pow(2).sum(-1).mean() / (y - y.mean(0)).pow(2).mean()


@exercise_check(
    reference=transcoder_loss,
    wrong_answers={
        "This is the plain mean squared error: divide it by the variance of the target.": _loss_plain,
        "You divided by the mean square of y; centre y first (subtract its mean over tokens), so the "
        "baseline is predicting the mean.": _loss_uncentred,
        "You summed the squared error over d_model but averaged the variance: average both per element.": _loss_sum,
    },
)
def check_transcoder_loss(fn) -> None:
    """`transcoder_loss(y, y_hat)`: MSE per element divided by the variance of y (1 = as bad as the mean)."""
    for seed, n, d, shift in ((2, 50, 6, 3.0), (3, 9, 16, -1.5)):
        g = _gen(seed)
        y = torch.randn(n, d, generator=g) * 2 + shift
        y_hat = y + torch.randn(n, d, generator=g) * 0.7
        verify(
            fn,
            y,
            y_hat,
            what=f"the loss on ({n}, {d}) tokens",
            why="Return a scalar tensor: training calls `.backward()` on it.",
        )


# --- tiny random graphs for 7.3 - 7.6 and 7.8 ----------------------------------------------------


@lru_cache(maxsize=2)
def _tiny_graph(seed: int) -> tuple[Graph, Transcoders]:
    """The attribution graph of a random prompt in a tiny random GPT-2 with random transcoders (all biases non-zero).

    Seed 0: 2 layers, 6 tokens, k = 4; seed 1: 3 layers, 7 tokens, k = 3. The model is `digsite.fixtures`' cached one.
    """
    n_layers, d, n_pos, d_tc, k = ((2, 16, 6, 24, 4), (3, 24, 7, 32, 3))[seed % 2]
    tok = toy_tokenizer()
    model = tiny_gpt2(
        tok,
        seed=seed,
        biases=0.2,
        vocab_size=len(tok),
        n_positions=32,
        n_embd=d,
        n_layer=n_layers,
        n_head=2,
        n_inner=2 * d,
        bos_token_id=1,
        eos_token_id=1,
        initializer_range=0.2,
    )
    g = _gen(100 + seed)
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


def _inputs(seed: int) -> tuple[Graph, FrozenModel, Tensor, list[Tensor], Tensor]:
    """(graph, frozen model, embeddings, activations per layer (pos, d_tc), errors) of a tiny graph."""
    graph, tc = _tiny_graph(seed)
    acts = [torch.zeros(graph.n_pos, tc.cfg.d_tc, dtype=torch.float64) for _ in range(graph.n_layers)]
    for (layer, pos, index), a in zip(graph.features.tolist(), graph.activations):
        acts[layer][pos, index] = a
    return graph, graph.frozen, graph.embeddings, acts, graph.errors


# --- 7.3 the direct effect between two features --------------------------------------------------


def _de_full(fm, embeddings, activations, errors, source, receiver):
    pres, _ = frozen_forward(fm, embeddings, activations, list(errors))
    return pres[receiver[0]][receiver[1], receiver[2]].item()


def _de_flipped(fm, embeddings, activations, errors, source, receiver):
    return -direct_effect(fm, embeddings, activations, errors, source, receiver)


def _de_times_activation(fm, embeddings, activations, errors, source, receiver):
    a = activations[source[0]][source[1], source[2]].item()
    return a * direct_effect(fm, embeddings, activations, errors, source, receiver)


@exercise_check(
    reference=direct_effect,
    wrong_answers={
        "You returned the receiver's whole pre-activation; the direct effect is how much of it the source "
        "supplies (with the source minus without it).": _de_full,
        "The sign is flipped: compute (with the source) minus (without the source).": _de_flipped,
        "You multiplied by the source's activation again; removing the source already accounts for it.": _de_times_activation,
    },
)
def check_direct_effect(fn) -> None:
    """`direct_effect(fm, embeddings, activations, errors, source, receiver)`: the linearised effect of one feature on another."""
    for seed in (0, 1):
        graph, fm, emb, acts, errs = _inputs(seed)
        ff = graph.adjacency[: graph.n_features, : graph.n_features]
        pairs = [(int(s), int(t)) for t, s in ff.nonzero().tolist()]
        if not pairs:
            raise RuntimeError("the check's tiny graph has no feature-to-feature edge")
        # the strongest positive and the strongest negative edge: both signs, other layers and positions
        for t, s in (divmod(int(ff.argmax()), graph.n_features), divmod(int(ff.argmin()), graph.n_features)):
            src, rcv = tuple(graph.features[s].tolist()), tuple(graph.features[t].tolist())
            verify(
                fn,
                fm,
                emb,
                acts,
                errs,
                src,
                rcv,
                what=f"the direct effect of feature {src} on feature {rcv} ({graph.n_layers}-layer model)",
                why="Return a float (`.item()`): the cells below print and compare it.",
                atol=1e-6,
                rtol=1e-5,
            )


# --- 7.4 the adjacency matrix ---------------------------------------------------------------------


def _adj_transposed(*args):
    return adjacency_matrix(*args).T


def _adj_no_embeddings(fm, embeddings, activations, errors, features, target_weights, target_pos):
    A = adjacency_matrix(fm, embeddings, activations, errors, features, target_weights, target_pos)
    A[:, len(features) + len(activations) * len(embeddings) : -1] = 0
    return A


def _adj_no_target(*args):
    A = adjacency_matrix(*args)
    A[-1] = 0
    return A


@exercise_check(
    reference=adjacency_matrix,
    wrong_answers={
        "Rows and columns are swapped: adjacency[t, s] is the effect OF source s ON receiver t (rows receive).": _adj_transposed,
        "The embedding columns are empty: the token + position embeddings are sources too.": _adj_no_embeddings,
        "The target's row is empty: the target is a receiver like the features.": _adj_no_target,
    },
)
def check_adjacency_matrix(fn) -> None:
    """`adjacency_matrix(fm, embeddings, activations, errors, features, target_weights, target_pos)` -> (n, n)."""
    for seed in (0, 1):
        graph, fm, emb, acts, errs = _inputs(seed)
        verify(
            fn,
            fm,
            emb,
            acts,
            errs,
            graph.features,
            graph.target_weights,
            graph.target_pos,
            what=f"the adjacency matrix of a {graph.n_layers}-layer, {graph.n_pos}-token graph",
            atol=1e-6,
            rtol=1e-5,
        )


# --- 7.5 influence ---------------------------------------------------------------------------------


def _random_dag(seed: int, n: int, density: float) -> Tensor:
    """A random acyclic (n, n) adjacency with weights of both signs (node i receives only from nodes < i)."""
    g = _gen(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < density)
    return A.tril(-1)


def _all_paths(a_hat: Tensor, target: int) -> Tensor:
    """Row `target` of a_hat + a_hat² + ... (a_hat (n, n) acyclic), as a wrong answer's last step."""
    total, row = torch.zeros(len(a_hat), dtype=a_hat.dtype), a_hat[target].clone()
    for _ in range(len(a_hat)):
        total, row = total + row, row @ a_hat
    return total


def _inf_signed(adjacency, target):
    return _all_paths(adjacency / adjacency.abs().sum(1, keepdim=True).clamp_min(1e-300), target)


def _inf_unnormalised(adjacency, target):
    return _all_paths(adjacency.abs(), target)


def _inf_direct_only(adjacency, target):
    return normalized_adjacency(adjacency)[target].clone()


@exercise_check(
    reference=influence,
    wrong_answers={
        "Take absolute values before normalising: influence counts how much, not which way.": _inf_signed,
        "Normalise each row of |A| to sum to 1 first, so that influences are shares.": _inf_unnormalised,
        "You kept only direct edges into the target; add the paths through other nodes (A + A² + A³ + …).": _inf_direct_only,
    },
)
def check_influence(fn) -> None:
    """`influence(adjacency, target)`: each node's summed influence on the target over all paths."""
    graph = _tiny_graph(1)[0]
    for A, target in (
        (_random_dag(5, 7, 0.6), 6),
        (_random_dag(6, 12, 0.35), 10),
        (graph.adjacency, graph.target_index),
    ):
        verify(fn, A, target, what=f"the influences on node {target} of a {len(A)}-node graph", atol=1e-9, rtol=1e-7)


# --- 7.6 pruning -----------------------------------------------------------------------------------


def _prune_everything(adjacency, n_features, target, node_threshold, edge_threshold):
    inf = influence(adjacency, target)
    keep = torch.zeros(len(adjacency), dtype=torch.bool)
    order = inf.argsort(descending=True)
    cum = inf[order].cumsum(0) / inf.sum()
    keep[order[: int((cum < node_threshold).sum()) + 1]] = True
    keep[target] = True
    return prune_graph(adjacency * keep[:, None] * keep[None, :], n_features, target, 1.0, edge_threshold)


def _prune_raw_edges(adjacency, n_features, target, node_threshold, edge_threshold):
    nodes, _ = prune_graph(adjacency, n_features, target, node_threshold, 1.0)
    A = adjacency.abs() * nodes[:, None] * nodes[None, :]
    flat = A.flatten()
    order = flat.argsort(descending=True)
    cum = flat[order].cumsum(0) / flat.sum()
    edges = torch.zeros_like(flat, dtype=torch.bool)
    edges[order[: int((cum < edge_threshold).sum()) + 1]] = True
    return nodes, edges.reshape(A.shape) & (A != 0)


def _prune_per_node(adjacency, n_features, target, node_threshold, edge_threshold):
    inf = influence(adjacency, target)
    A = adjacency.clone()
    drop = torch.zeros(len(A), dtype=torch.bool)
    drop[:n_features] = inf[:n_features] < (1 - node_threshold) * inf[:n_features].max()
    A[drop] = 0
    A[:, drop] = 0
    return prune_graph(A, n_features, target, 1.0, edge_threshold)


@exercise_check(
    reference=prune_graph,
    wrong_answers={
        "Only feature nodes are pruned as nodes: keep every error and embedding node (prune their edges instead).": _prune_everything,
        "An edge's score is its normalised weight times its receiver's influence on the target, not its raw weight.": _prune_raw_edges,
        "Keep features in order of influence until their cumulative share reaches the threshold, not by a "
        "cut-off relative to the strongest one.": _prune_per_node,
    },
)
def check_prune_graph(fn) -> None:
    """`prune_graph(adjacency, n_features, target, node_threshold, edge_threshold)` -> (nodes, edges) masks."""
    for seed, nt, et in ((0, 0.8, 0.98), (1, 0.6, 0.9)):
        graph = _tiny_graph(seed)[0]
        verify(
            fn,
            graph.adjacency,
            graph.n_features,
            graph.target_index,
            nt,
            et,
            what=f"the kept (nodes, edges) of a {graph.n_layers}-layer graph, thresholds {nt}, {et}",
            why="Return a pair (nodes, edges) of boolean tensors (masks): later cells index the graph with them.",
        )


# --- 7.7 labelling a feature ----------------------------------------------------------------------


def _label_all_firing(acts, labels, top_k):
    return feature_label(acts, labels, top_k=acts.numel())


def _label_share_of_k(acts, labels, top_k):
    label, share = feature_label(acts, labels, top_k)
    return label, share * min(top_k, int((acts > 0).sum())) / top_k


def _label_bottom(acts, labels, top_k):
    return feature_label(-acts + acts.max() + 1e-3, labels, top_k)


def _label_case(seed: int, n_seq: int, pos: int, n_fire: int) -> tuple[Tensor, list[list[str]]]:
    """A feature's activations (n_seq, pos), n_fire of them positive, whose 4 strongest are all on places."""
    g = _gen(seed)
    cats = ["name", "place", "animal (member)", "END", "'the'"]
    labels = [[cats[int(j)] for j in torch.randint(0, len(cats), (pos,), generator=g)] for _ in range(n_seq)]
    acts = torch.zeros(n_seq, pos)
    flat = torch.randperm(n_seq * pos, generator=g)[:n_fire]
    acts.view(-1)[flat] = torch.rand(n_fire, generator=g) + 0.1
    strong = [(s, p) for s in range(n_seq) for p in range(pos) if labels[s][p] == "place"][:4]
    for s, p in strong:
        acts[s, p] = 5 + torch.rand(1, generator=g).item()
    return acts, labels


@exercise_check(
    reference=feature_label,
    wrong_answers={
        "You counted every token where the feature fires; count only its top_k strongest activations.": _label_all_firing,
        "The share is over the tokens you counted (fewer than top_k when the feature fires less often).": _label_share_of_k,
        "You took the weakest activations: sort from the largest down.": _label_bottom,
    },
)
def check_feature_label(fn) -> None:
    """`feature_label(acts, labels, top_k)` -> (the most common label among the top_k activations, its share)."""
    for seed, n_seq, pos, n_fire, k in ((0, 6, 10, 30, 5), (1, 3, 7, 6, 15)):
        acts, labels = _label_case(seed, n_seq, pos, n_fire)
        verify(
            fn,
            acts,
            labels,
            k,
            what=f"(label, share) for top_k={k}, {n_fire} firing tokens",
            why="Return a pair (label, share): the table below unpacks it.",
        )


# --- 7.8 the graph's prediction of an intervention -------------------------------------------------


def _pred_direct_only(adjacency, values, n_features, target, nodes, factor):
    return sum(((factor - 1.0) * adjacency[target, i]).item() for i in nodes)


def _pred_factor_not_delta(adjacency, values, n_features, target, nodes, factor):
    return predict_intervention(adjacency, values, n_features, target, nodes, factor + 1.0)


def _pred_not_per_unit(adjacency, values, n_features, target, nodes, factor):
    A = adjacency.clone()
    A[:, n_features:] = 0
    change, fixed = torch.zeros(len(A), dtype=A.dtype), (factor - 1.0) * values[list(nodes)]
    for _ in range(len(A)):
        change[list(nodes)] = fixed
        change = A @ change
    return change[target].item()


@exercise_check(
    reference=predict_intervention,
    wrong_answers={
        "You kept only the edited features' direct edges into the target; the other features respond too, "
        "and pass the change on along their own edges.": _pred_direct_only,
        "Multiplying a feature by `factor` changes it by (factor − 1) × its value, not factor × its value.": _pred_factor_not_delta,
        "An edge is the effect of its source at its present value: divide by the source's activation to get "
        "the effect per unit before multiplying by the change.": _pred_not_per_unit,
    },
)
def check_predict_intervention(fn) -> None:
    """`predict_intervention(adjacency, values, n_features, target, nodes, factor)` -> the predicted change."""
    for seed, factor, which in ((0, 0.0, slice(0, 1)), (1, 2.5, slice(0, 3))):  # ablate one; amplify three
        graph = _tiny_graph(seed)[0]
        inf = influence(graph.adjacency, graph.target_index)[: graph.n_features]
        nodes = inf.argsort(descending=True)[which].tolist()
        verify(
            fn,
            graph.adjacency,
            graph.values,
            graph.n_features,
            graph.target_index,
            nodes,
            factor,
            what=f"the predicted change for features {nodes} times {factor}",
            why="Return a float (`.item()`): the cells below compare it with the real change.",
            atol=1e-6,
            rtol=1e-5,
        )


# --- 7.9 the strongest path -------------------------------------------------------------------------


def _path_greedy(adjacency, target, sources):
    A = normalized_adjacency(adjacency)
    node, path = target, [target]
    while node not in sources:
        node = int(A[node].argmax())
        path.append(node)
        if A[node].sum() == 0 and node not in sources:
            break
    return path[::-1]


def _path_raw(adjacency, target, sources):
    """The max-product path on |A| scaled by its largest entry, found by memoised recursion from each source."""
    W = adjacency.abs() / adjacency.abs().max()

    @cache
    def best(node: int) -> tuple[float, tuple[int, ...]]:  # the best (product, path) from node to the target
        if node == target:
            return 1.0, (target,)
        options = [(W[t, node].item() * best(t)[0], (node, *best(t)[1])) for t in W[:, node].nonzero()[:, 0].tolist()]
        return max(options, key=lambda o: o[0], default=(0.0, (node,)))

    return list(max((best(s) for s in sources), key=lambda o: o[0])[1])


def _path_reversed(adjacency, target, sources):
    return strongest_path(adjacency, target, sources)[::-1]


@exercise_check(
    reference=strongest_path,
    wrong_answers={
        "Walking back from the target along the strongest incoming edge is greedy: a weak first step can "
        "lead to the strongest path. Compute, for every node, the best product to the target.": _path_greedy,
        "Use the normalised adjacency (each row of |A| sums to 1), not raw weights: large activations "
        "should not win by size alone.": _path_raw,
        "Your path runs from the target back to the source; list it from the source to the target.": _path_reversed,
    },
)
def check_strongest_path(fn) -> None:
    """`strongest_path(adjacency, target, sources)` -> the nodes of the max-product path, source first."""
    A1 = torch.zeros(6, 6, dtype=torch.float64)  # greedy fails here: 5 <- 3 strongest, but 3's inputs are split
    A1[5, 3], A1[5, 4] = 0.6, 0.4
    A1[3, 0], A1[3, 1], A1[3, 2] = 1.0, 1.0, 1.0
    A1[4, 2] = 2.0
    A1[4, 0] = 0.0001
    A2 = torch.zeros(5, 5, dtype=torch.float64)  # raw weights favour 0 -> 2 -> 4, shares favour 0 -> 3 -> 4
    A2[4, 2], A2[4, 3] = 10.0, -1.0
    A2[2, 0], A2[2, 1] = 1.0, -100.0
    A2[3, 0] = 0.001
    graph = _tiny_graph(1)[0]
    cases = [
        (A1, 5, [0, 1, 2]),
        (A2, 4, [0]),
        (graph.adjacency, graph.target_index, [graph.embedding_index(p) for p in range(graph.n_pos)]),
    ]
    for A, target, sources in cases:
        verify(
            fn,
            A,
            target,
            sources,
            what=f"the strongest path in a {len(A)}-node graph",
            why="Return a list of node indices (ints), source first.",
        )
