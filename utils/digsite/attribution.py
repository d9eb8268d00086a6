"""Attribution graphs: which features, through which features, make one prediction (chapter 7).

Replace every MLP by its transcoder (`digsite.transcoders`) and add back, as an *error node*,
whatever the transcoder misses, so the replacement reproduces the model's forward pass exactly
on one prompt. Then freeze, for that prompt, every attention pattern and every norm's scale.
What is left is linear in the *sources* that write into the residual stream:

- an **embedding** node per position (token + position embedding),
- a **feature** node per active transcoder feature (layer, position, index): it writes
  activation x decoder row; its activation (equal to its pre-activation where it fires) is
  read linearly from the residual stream through the frozen ln2,
- an **error** node per (layer, position): the MLP's output minus the transcoder's,
- the **target**: a logit, or a difference of logits, at one position,

plus constants (the biases, the norms' biases, the transcoders' b_dec and b_enc). So every
receiver's value is exactly the sum of its incoming *direct effects* plus its bias term
(Ameisen et al. 2025, "Circuit Tracing"): `adjacency[t, s]` is the effect of source s on
receiver t along the paths that pass through no other node (through attention with its
frozen pattern, the norms with their frozen scales and the transcoders' linear skips).

Node order in every matrix: features (sorted by layer, position, index), errors (layer-major,
then position), embeddings (by position), the target last. `adjacency[t, s]`: rows receive,
columns send. Everything is computed in float64 from one float32 forward pass.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .transcoders import Transcoders, mlp_input, mlp_names

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .hooks import HookedModel

Target = str | int | tuple | Tensor
F64 = torch.float64


# --------------------------------------------------------------------------------------
# The frozen, linear replacement model of one prompt
# --------------------------------------------------------------------------------------


@dataclass
class FrozenModel:
    """Weights in float64 and, for one prompt, the frozen attention patterns and norm scales.

    W_V (n_layers, n_heads, d_model, d_head), b_V (n_layers, n_heads, d_head),
    W_O (n_layers, n_heads, d_head, d_model), b_O (n_layers, d_model), W_U (d_model, d_vocab),
    the transcoders' weights as in `Transcoders`; patterns (n_layers, n_heads, pos, pos);
    scale1 / scale2 (n_layers, pos, 1) the ln1 / ln2 divisors, scale_f (pos, 1) ln_f's.
    """

    W_E: Tensor
    W_pos: Tensor
    ln1_w: Tensor
    ln1_b: Tensor
    ln2_w: Tensor
    ln2_b: Tensor
    W_V: Tensor
    b_V: Tensor
    W_O: Tensor
    b_O: Tensor
    lnf_w: Tensor
    lnf_b: Tensor
    W_U: Tensor
    b_U: Tensor
    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    W_skip: Tensor
    patterns: Tensor
    scale1: Tensor
    scale2: Tensor
    scale_f: Tensor

    @property
    def n_layers(self) -> int:
        return self.W_V.shape[0]


def frozen_ln(x: Tensor, scale: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """LayerNorm of x (…, pos, d) divided by a given, frozen scale (pos, 1): affine in x."""
    return (x - x.mean(-1, keepdim=True)) / scale * w + b


def frozen_ln_adjoint(g: Tensor, scale: Tensor, w: Tensor) -> Tensor:
    """The transpose of a frozen LayerNorm's linear part, applied to gradients g (…, pos, d)."""
    v = g * w / scale
    return v - v.mean(-1, keepdim=True)


def _scale(x: Tensor, eps: float) -> Tensor:
    return ((x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + eps).sqrt()


def _gpt2_blocks(model: HookedModel) -> list:
    base = getattr(model.model, "transformer", None)
    if base is None or not hasattr(base, "wpe") or not hasattr(base.h[0].attn, "c_attn"):
        raise TypeError(
            "Attribution graphs here support GPT-2 models (LayerNorm, learned positions), like the "
            f"'toylang' organism; got a {model.cfg.architecture}."
        )
    return list(base.h)


def graph_hook_names(n_layers: int) -> list[str]:
    """The hook points one forward pass must cache to build a graph."""
    names = []
    for l in range(n_layers):
        names += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.attn.hook_pattern", *mlp_names(l)]
    return names + [f"blocks.{n_layers - 1}.hook_resid_post"]


def frozen_model(model: HookedModel, tc: Transcoders, cache) -> FrozenModel:
    """Weights in float64 plus the patterns and norm scales of the prompt in `cache` (batch 1).

    `cache` holds the names of `graph_hook_names`; scales are recomputed in float64 from the
    cached residual streams, as the model computes them (sqrt(variance + eps)).
    """
    blocks = _gpt2_blocks(model)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if tc.cfg.n_layers != L or tc.cfg.d_model != model.cfg.d_model:
        raise ValueError(
            f"These transcoders are for a {tc.cfg.n_layers}-layer, d_model {tc.cfg.d_model} model; "
            f"this model has {L} layers, d_model {model.cfg.d_model}."
        )
    lnf = model.model.transformer.ln_f

    def stack(get) -> Tensor:
        return torch.stack([get(b) for b in blocks]).detach().to(F64)

    pre = [cache[f"blocks.{l}.hook_resid_pre"][0].to(F64) for l in range(L)]
    mid = [cache[f"blocks.{l}.hook_resid_mid"][0].to(F64) for l in range(L)]
    final = cache[f"blocks.{L - 1}.hook_resid_post"][0].to(F64)

    def w(t: Tensor) -> Tensor:
        return t.detach().to(F64)

    return FrozenModel(
        W_E=w(model.W_E),
        W_pos=w(model.W_pos),
        ln1_w=stack(lambda b: b.ln_1.weight),
        ln1_b=stack(lambda b: b.ln_1.bias),
        ln2_w=stack(lambda b: b.ln_2.weight),
        ln2_b=stack(lambda b: b.ln_2.bias),
        W_V=w(model.W_V),
        b_V=stack(lambda b: b.attn.c_attn.bias.chunk(3)[2].reshape(H, -1)),
        W_O=w(model.W_O),
        b_O=w(model.b_O),
        lnf_w=w(lnf.weight),
        lnf_b=w(lnf.bias),
        W_U=w(model.W_U),
        b_U=w(model.b_U),
        W_enc=w(tc.W_enc),
        b_enc=w(tc.b_enc),
        W_dec=w(tc.W_dec),
        b_dec=w(tc.b_dec),
        W_skip=w(tc.W_skip),
        patterns=torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][0] for l in range(L)]).to(F64),
        scale1=torch.stack([_scale(x, blocks[l].ln_1.eps) for l, x in enumerate(pre)]),
        scale2=torch.stack([_scale(x, blocks[l].ln_2.eps) for l, x in enumerate(mid)]),
        scale_f=_scale(final, lnf.eps),
    )


def frozen_attention(fm: FrozenModel, layer: int, r: Tensor) -> Tensor:
    """Attention output (pos, d_model) of `layer` on residual r (pos, d_model), patterns and ln1 scale frozen."""
    x = frozen_ln(r, fm.scale1[layer], fm.ln1_w[layer], fm.ln1_b[layer])
    v = torch.einsum("pd,hde->hpe", x, fm.W_V[layer]) + fm.b_V[layer][:, None]
    z = fm.patterns[layer] @ v
    return torch.einsum("hpe,hed->pd", z, fm.W_O[layer]) + fm.b_O[layer]


def frozen_attention_adjoint(fm: FrozenModel, layer: int, g: Tensor) -> Tensor:
    """Gradients g (batch, pos, d_model) at the attention output -> at the residual it reads (batch, pos, d_model)."""
    gz = torch.einsum("bqd,hed->bhqe", g, fm.W_O[layer])
    gv = torch.einsum("hqk,bhqe->bhke", fm.patterns[layer], gz)
    gx = torch.einsum("bhke,hde->bkd", gv, fm.W_V[layer])
    return frozen_ln_adjoint(gx, fm.scale1[layer], fm.ln1_w[layer])


def frozen_forward(
    fm: FrozenModel,
    embeddings: Tensor,
    features: Sequence[Tensor],
    errors: Sequence[Tensor],
    target_weights: Tensor | None = None,
) -> tuple[list[Tensor], Tensor | None]:
    """The frozen replacement model run forward from given sources.

    embeddings (pos, d_model); features[l] (pos, d_tc), the activations each feature writes
    (held as given, not recomputed); errors[l] (pos, d_model); target_weights (d_vocab,).
    Returns the transcoders' pre-activations per layer, [(pos, d_tc)], and the target read
    at every position, logits @ target_weights (pos,) (None without target_weights). All-zero
    sources give the bias terms.
    """
    r = embeddings
    pres = []
    for l in range(fm.n_layers):
        r = r + frozen_attention(fm, l, r)
        x2 = frozen_ln(r, fm.scale2[l], fm.ln2_w[l], fm.ln2_b[l])
        pres.append(x2 @ fm.W_enc[l] + fm.b_enc[l])
        r = r + features[l] @ fm.W_dec[l] + fm.b_dec[l] + x2 @ fm.W_skip[l] + errors[l]
    if target_weights is None:
        return pres, None
    logits = frozen_ln(r, fm.scale_f, fm.lnf_w, fm.lnf_b) @ fm.W_U + fm.b_U
    return pres, logits @ target_weights


# --------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------


@dataclass
class Graph:
    """The attribution graph of one prompt and one target (see the module's docstring for the node order).

    tokens (pos,); features (n_features, 3) rows (layer, pos, index); activations (n_features,);
    errors (n_layers, pos, d_model) the error vectors; embeddings (pos, d_model);
    adjacency (n_nodes, n_nodes), adjacency[t, s] = direct effect of s on t;
    values (n_nodes,): a feature's activation, the target's value; for error and embedding
    nodes (sources only) the norm of the vector they write. bias (n_nodes,): each receiver's
    constant term (0 for sources), so adjacency.sum(1) + bias == values for features and target.
    target_weights (d_vocab,): the target is logits[target_pos] @ target_weights.
    frozen: the prompt's attention patterns and norm scales (`FrozenModel`), for interventions
    that freeze them too.
    """

    tokens: Tensor
    str_tokens: list[str]
    features: Tensor
    activations: Tensor
    errors: Tensor
    embeddings: Tensor
    adjacency: Tensor
    values: Tensor
    bias: Tensor
    target_weights: Tensor
    target_pos: int
    target_label: str
    n_layers: int
    frozen: FrozenModel

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    @property
    def n_nodes(self) -> int:
        return self.n_features + (self.n_layers + 1) * self.n_pos + 1

    @property
    def target_index(self) -> int:
        return self.n_nodes - 1

    def error_index(self, layer: int, pos: int) -> int:
        return self.n_features + layer * self.n_pos + pos

    def embedding_index(self, pos: int) -> int:
        return self.n_features + self.n_layers * self.n_pos + pos

    def feature_index(self, layer: int, pos: int, index: int) -> int:
        """The node number of an active feature; a KeyError if it is not active on this prompt."""
        hit = ((self.features == torch.tensor([layer, pos, index])).all(1)).nonzero()
        if len(hit) == 0:
            raise KeyError(f"Feature {index} of layer {layer} is not active at position {pos} of this prompt.")
        return int(hit[0])

    def node(self, i: int) -> tuple[str, int, int, int]:
        """(kind, layer, pos, index) of node i: kind is 'feature', 'error', 'embedding' or 'target'.

        Embeddings have layer -1, the target layer n_layers; index is -1 where it means nothing.
        """
        if i < 0 or i >= self.n_nodes:
            raise IndexError(f"node {i} out of range: the graph has {self.n_nodes} nodes")
        if i < self.n_features:
            layer, pos, idx = self.features[i].tolist()
            return "feature", layer, pos, idx
        j = i - self.n_features
        if j < self.n_layers * self.n_pos:
            return "error", j // self.n_pos, j % self.n_pos, -1
        j -= self.n_layers * self.n_pos
        if j < self.n_pos:
            return "embedding", -1, j, -1
        return "target", self.n_layers, self.target_pos, -1

    def name(self, i: int) -> str:
        """A short readable name of node i: 'L2 F37 @4 "John"', 'err L1 @3', 'emb @0 "<bos>"', 'target'."""
        kind, layer, pos, idx = self.node(i)
        tok = self.str_tokens[pos].strip() if pos < self.n_pos else ""
        if kind == "feature":
            return f'L{layer} F{idx} @{pos} "{tok}"'
        if kind == "error":
            return f'err L{layer} @{pos} "{tok}"'
        if kind == "embedding":
            return f'emb @{pos} "{tok}"'
        return f"target {self.target_label}"


def target_weights_for(model: HookedModel, target: Target) -> tuple[Tensor, str]:
    """(d_vocab,) weights w so that the target is logits @ w, and a label for it.

    target: a word (its logit), a token id, a pair (good, bad) of words or ids (the logit
    difference good - bad), or a (d_vocab,) tensor of weights.
    """
    V = model.cfg.d_vocab

    def token_id(t) -> int:
        if isinstance(t, int):
            if not 0 <= t < V:
                raise ValueError(f"token id {t} is outside the vocabulary (0..{V - 1})")
            return t
        if isinstance(t, str):
            ids = model.tokenizer.encode(t.strip(), add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"target {t!r} is {len(ids)} tokens; give a single token (a word of the toy language)")
            return ids[0]
        raise TypeError(f"a target token must be a word or an id, not {type(t).__name__}")

    if isinstance(target, Tensor):
        if target.shape != (V,):
            raise ValueError(f"target weights must have shape ({V},), got {tuple(target.shape)}")
        return target.detach().to(F64), "custom"
    w = torch.zeros(V, dtype=F64)
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ValueError("a logit-difference target is a pair (good, bad)")
        good, bad = (token_id(t) for t in target)
        if good == bad:
            raise ValueError("the two tokens of a logit difference must differ")
        w[good], w[bad] = 1.0, -1.0
        return w, f"logit({model.to_string(good).strip()}) - logit({model.to_string(bad).strip()})"
    t = token_id(target)
    w[t] = 1.0
    return w, f"logit({model.to_string(t).strip()})"


def _prompt_tokens(model: HookedModel, prompt: str | Tensor) -> Tensor:
    if isinstance(prompt, str):
        return model.to_tokens(prompt)[0]
    if (
        not isinstance(prompt, Tensor)
        or prompt.dtype != torch.long
        or prompt.ndim not in (1, 2)
        or (prompt.ndim == 2 and prompt.shape[0] != 1)
    ):
        raise ValueError("prompt must be a string or a 1-D LongTensor of token ids (one prompt)")
    return prompt.reshape(-1).to(model.device)


def active_features(model: HookedModel, tc: Transcoders, cache) -> list[Tensor]:
    """Per layer, the transcoder's features (pos, d_tc) on the cached prompt (batch 1); BOS (pos 0) all zero."""
    out = []
    for l in range(tc.cfg.n_layers):
        x = mlp_input(model, cache[mlp_names(l)[0]][0], l)
        f = tc.encode(x.to(tc.W_enc.dtype), l).detach().clone()
        f[0] = 0
        out.append(f)
    return out


@torch.no_grad()
def attribution_graph(
    model: HookedModel,
    tc: Transcoders,
    prompt: str | Tensor,
    target: Target,
    target_pos: int = -1,
    batch_size: int = 256,
) -> Graph:
    """The attribution graph of `prompt` (a string, BOS added; or a 1-D tensor of ids) for one target.

    target: see `target_weights_for` (a word, an id, a (good, bad) pair, or weights);
    target_pos: the position whose logits are read (default the last). Receivers are handled
    `batch_size` at a time in one backward sweep through the frozen model.
    """
    _gpt2_blocks(model)
    tokens = _prompt_tokens(model, prompt)
    P, L = len(tokens), model.cfg.n_layers
    if not -P <= target_pos < P:
        raise ValueError(f"target_pos {target_pos} is outside the prompt's {P} positions")
    tpos = target_pos % P
    if P > model.cfg.n_ctx:
        raise ValueError(f"the prompt has {P} tokens; the model's context is {model.cfg.n_ctx}")
    tw, label = target_weights_for(model, target)
    _, cache = model.run_with_cache(tokens[None], names_filter=graph_hook_names(L))
    fm = frozen_model(model, tc, cache)
    feats32 = active_features(model, tc, cache)

    # which features fire, and their float64 values; error vectors
    emb = fm.W_E[tokens] + fm.W_pos[:P]
    r = emb
    masks, acts, errs = [], [], []
    for l in range(L):
        r = r + frozen_attention(fm, l, r)
        x2 = frozen_ln(r, fm.scale2[l], fm.ln2_w[l], fm.ln2_b[l])
        mask = feats32[l] > 0
        f = torch.where(mask, x2 @ fm.W_enc[l] + fm.b_enc[l], torch.zeros((), dtype=F64))
        mlp_out = cache[mlp_names(l)[1]][0].to(F64)
        err = mlp_out - (f @ fm.W_dec[l] + fm.b_dec[l] + x2 @ fm.W_skip[l])
        r = r + mlp_out
        masks.append(mask)
        acts.append(f)
        errs.append(err)
    features = (
        torch.cat(
            [torch.stack([torch.full_like(m.nonzero()[:, 0], l), *m.nonzero().T], 1) for l, m in enumerate(masks)]
        )
        if any(m.any() for m in masks)
        else torch.zeros(0, 3, dtype=torch.long)
    )
    activations = (
        torch.stack([acts[l][p, i] for l, p, i in features.tolist()]) if len(features) else torch.zeros(0, dtype=F64)
    )
    pres, target_all = frozen_forward(fm, emb, acts, errs, tw)
    zero_pres, zero_target = frozen_forward(
        fm, torch.zeros_like(emb), [torch.zeros_like(a) for a in acts], [torch.zeros_like(e) for e in errs], tw
    )
    nF = len(features)
    n = nF + (L + 1) * P + 1
    values = torch.zeros(n, dtype=F64)
    bias = torch.zeros(n, dtype=F64)
    if nF:
        values[:nF] = torch.stack([pres[l][p, i] for l, p, i in features.tolist()])
        bias[:nF] = torch.stack([zero_pres[l][p, i] for l, p, i in features.tolist()])
    values[nF : nF + L * P] = torch.stack(errs).norm(dim=-1).flatten()
    values[nF + L * P : n - 1] = emb.norm(dim=-1)
    values[-1], bias[-1] = target_all[tpos], zero_target[tpos]

    adjacency = torch.zeros(n, n, dtype=F64)
    receivers = list(range(nF)) + [n - 1]
    err_stack = torch.stack(errs)
    writes = [acts[l][masks[l]][:, None] * fm.W_dec[l][masks[l].nonzero()[:, 1]] for l in range(L)]  # (n_l, d)
    layer_rows = [(features[:, 0] == l).nonzero()[:, 0] for l in range(L)]
    u = fm.W_U @ tw
    for start in range(0, len(receivers), batch_size):
        rows = torch.tensor(receivers[start : start + batch_size])
        adjacency[rows] = _receiver_rows(fm, rows, features, layer_rows, writes, err_stack, emb, u, tpos, n, nF, P)
    return Graph(
        tokens=tokens.cpu(),
        str_tokens=model.to_str_tokens(tokens),
        features=features,
        activations=activations,
        errors=err_stack,
        embeddings=emb,
        adjacency=adjacency,
        values=values,
        bias=bias,
        target_weights=tw,
        target_pos=tpos,
        target_label=label,
        n_layers=L,
        frozen=fm,
    )


def _receiver_rows(
    fm: FrozenModel,
    rows: Tensor,
    features: Tensor,
    layer_rows: list[Tensor],
    writes: list[Tensor],
    errors: Tensor,
    emb: Tensor,
    u: Tensor,
    tpos: int,
    n: int,
    nF: int,
    P: int,
) -> Tensor:
    """Rows `rows` of the adjacency matrix: one backward sweep through the frozen model for each receiver."""
    L = fm.n_layers
    B = len(rows)
    by_pos = []  # per layer: (position, node columns, their write vectors) for the features at that position
    for l in range(L):
        pos = features[layer_rows[l], 1]
        by_pos.append([(p, layer_rows[l][pos == p], writes[l][pos == p]) for p in pos.unique().tolist()])
    out = torch.zeros(B, n, dtype=F64)
    G = torch.zeros(B, P, fm.W_E.shape[1], dtype=F64)
    is_target = rows == n - 1
    if is_target.any():
        G[is_target, tpos] = frozen_ln_adjoint((fm.lnf_w * 0 + u)[None], fm.scale_f[tpos], fm.lnf_w)[0]
    local = {int(r): b for b, r in enumerate(rows.tolist())}
    for l in reversed(range(L)):
        # G: gradient at the residual after block l, where layer-l features and errors write
        lr = layer_rows[l]
        for p, cols, w in by_pos[l]:  # one small matmul per position: no (batch, n_features, d) gather
            out[:, cols] = G[:, p] @ w.T
        out[:, nF + l * P : nF + (l + 1) * P] = torch.einsum("bpd,pd->bp", G, errors[l])
        G = G + frozen_ln_adjoint(G @ fm.W_skip[l].T, fm.scale2[l], fm.ln2_w[l])
        for f in lr.tolist():  # receivers among layer l's features read here, at resid_mid
            b = local.get(f)
            if b is not None:
                _, p, i = features[f].tolist()
                G[b, p] += frozen_ln_adjoint(fm.W_enc[l][:, i][None], fm.scale2[l][p], fm.ln2_w[l])[0]
        G = G + frozen_attention_adjoint(fm, l, G)
    out[:, nF + L * P : nF + (L + 1) * P] = torch.einsum("bpd,pd->bp", G, emb)
    return out


def exactness_error(graph: Graph) -> float:
    """The largest |sum of incoming edges + bias - value| over the features and the target (float64 rounding)."""
    recv = torch.cat([torch.arange(graph.n_features), torch.tensor([graph.target_index])])
    return (graph.adjacency[recv].sum(1) + graph.bias[recv] - graph.values[recv]).abs().max().item()


# --------------------------------------------------------------------------------------
# Influence and pruning (Ameisen et al. 2025)
# --------------------------------------------------------------------------------------


def normalized_adjacency(adjacency: Tensor) -> Tensor:
    """|A| with every row scaled to sum to 1 (rows of sources, all zero, stay zero). (n, n) -> (n, n)."""
    a = adjacency.abs()
    s = a.sum(1, keepdim=True)
    return torch.where(s > 0, a / s.clamp_min(1e-300), torch.zeros((), dtype=a.dtype))


def influence_on(adjacency: Tensor, target: int) -> Tensor:
    """Each node's total influence on node `target`: the sum over all paths of products of normalised
    edge weights, i.e. row `target` of A + A^2 + A^3 + ... for A = `normalized_adjacency`. (n,)."""
    A = normalized_adjacency(adjacency)
    cur = A[target].clone()
    total = torch.zeros_like(cur)
    for _ in range(len(A)):
        if not cur.any():
            break
        total += cur
        cur = cur @ A
    return total


@dataclass
class PrunedGraph:
    """Which nodes and edges of a graph survive pruning.

    nodes (n_nodes,) bool; edges (n_nodes, n_nodes) bool, aligned with the graph's adjacency;
    influence (n_nodes,) each node's influence on the target in the full graph.
    """

    graph: Graph
    nodes: Tensor
    edges: Tensor
    influence: Tensor

    @property
    def n_kept_features(self) -> int:
        return int(self.nodes[: self.graph.n_features].sum())


def _cumulative_keep(scores: Tensor, threshold: float) -> Tensor:
    """Keep the largest scores until their sum reaches `threshold` of the total. (m,) -> bool (m,)."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    total = scores.sum()
    if total <= 0:
        return keep
    order = scores.argsort(descending=True)
    cum = scores[order].cumsum(0) / total
    n_keep = int((cum < threshold).sum()) + 1
    keep[order[: min(n_keep, len(scores))]] = True
    return keep


def prune_adjacency(
    adjacency: Tensor, n_features: int, target: int, node_threshold: float = 0.8, edge_threshold: float = 0.98
) -> tuple[Tensor, Tensor]:
    """(nodes (n,) bool, edges (n, n) bool) kept by `prune`, for any adjacency whose first `n_features`
    nodes are features (the only nodes pruned as nodes) and whose node `target` is the target."""
    if not (0 < node_threshold <= 1 and 0 < edge_threshold <= 1):
        raise ValueError("thresholds are fractions in (0, 1]")
    n = len(adjacency)
    influence = influence_on(adjacency, target)
    nodes = torch.ones(n, dtype=torch.bool)
    nodes[:n_features] = _cumulative_keep(influence[:n_features], node_threshold)
    A = adjacency * nodes[:, None] * nodes[None, :]
    inf2 = influence_on(A, target)
    inf2[target] = 1.0
    scores = normalized_adjacency(A) * inf2[:, None]
    edges = _cumulative_keep(scores.flatten(), edge_threshold).reshape(scores.shape) & (A != 0)
    used = edges.any(0) | edges.any(1)
    used[target] = True
    return nodes & used, edges & used[:, None] & used[None, :]


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PrunedGraph:
    """Keep the features that carry `node_threshold` of all feature influence on the target, then the
    edges that carry `edge_threshold` of the edge scores (Ameisen et al. 2025).

    Features are taken in order of influence until their cumulative influence reaches the threshold;
    error and embedding nodes and the target are not pruned as nodes. An edge's score is its
    normalised weight times its receiver's influence on the target (1 for the target itself), both
    recomputed on the graph of kept nodes. Nodes left with no kept edge (but the target) are dropped.
    """
    nodes, edges = prune_adjacency(
        graph.adjacency, graph.n_features, graph.target_index, node_threshold, edge_threshold
    )
    return PrunedGraph(
        graph=graph, nodes=nodes, edges=edges, influence=influence_on(graph.adjacency, graph.target_index)
    )


def strongest_path(adjacency: Tensor, target: int, sources: Sequence[int]) -> list[int]:
    """The path from one of `sources` to `target` with the largest product of normalised edge weights
    (`normalized_adjacency`), as a list of nodes from source to target. Ties go to the lower index."""
    A = normalized_adjacency(adjacency)
    n = len(A)
    best = torch.zeros(n, dtype=A.dtype)  # best product from each node to the target
    best[target] = 1.0
    nxt = torch.full((n,), -1, dtype=torch.long)
    for _ in range(n):
        cand = A * best[:, None]  # cand[t, s]: through receiver t
        val, arg = cand.max(0)
        val[target] = 1.0
        if torch.equal(val, best):
            break
        better = val > best
        best, nxt = torch.where(better, val, best), torch.where(better, arg, nxt)
    src = torch.tensor(list(sources))
    if len(src) == 0 or best[src].max() <= 0:
        raise ValueError("no path leads from the given sources to the target")
    node = int(src[best[src].argmax()])
    path = [node]
    while node != target:
        node = int(nxt[node])
        path.append(node)
    return path


# --------------------------------------------------------------------------------------
# Interventions: the graph's prediction against the replacement model run for real
# --------------------------------------------------------------------------------------


def predicted_change(graph: Graph, nodes: Sequence[int], factor: float = 0.0) -> float:
    """The change of the target the linear graph predicts when features `nodes` are clamped to `factor` x their
    activation (0 ablates), every other feature responding along the graph's edges (attention and norms frozen)."""
    return linear_prediction(graph.adjacency, graph.values, graph.n_features, graph.target_index, nodes, factor)


def linear_prediction(
    adjacency: Tensor, values: Tensor, n_features: int, target: int, nodes: Sequence[int], factor: float = 0.0
) -> float:
    """`predicted_change` on bare tensors: adjacency (n, n), values (n,) whose first `n_features` entries
    are the features' activations. Each edited feature moves by (factor - 1) x its value; every other
    feature moves by the sum over its incoming feature edges of edge / source value x the source's move."""
    nodes = [int(i) for i in nodes]
    if any(not 0 <= i < n_features for i in nodes):
        raise ValueError(f"interventions act on feature nodes (0..{n_features - 1}); got {nodes}")
    vals = values[:n_features]
    per_unit = torch.zeros_like(adjacency)
    per_unit[:, :n_features] = adjacency[:, :n_features] / torch.where(vals != 0, vals, torch.ones_like(vals))
    idx = torch.tensor(nodes, dtype=torch.long)
    fixed = (factor - 1.0) * values[idx]
    delta = torch.zeros(len(adjacency), dtype=adjacency.dtype)
    delta[idx] = fixed
    for _ in range(len(adjacency)):
        new = per_unit @ delta
        new[idx] = fixed
        if torch.equal(new, delta):
            break
        delta = new
    return delta[target].item()


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


# --------------------------------------------------------------------------------------
# Feature contexts: what each feature fires on in a small set of toy-language texts
# --------------------------------------------------------------------------------------


class FeatureContexts:
    """The top-activating contexts of every transcoder feature on a small, fixed set of toy-language texts.

    Built once per (model, transcoders) with one forward pass over `n_docs` documents of
    `seq_len` tokens (seed 5,000,000: texts the organism never trained on).
    """

    def __init__(
        self, model: HookedModel, tc: Transcoders, n_docs: int = 120, seq_len: int = 48, seed: int = 5_000_000
    ):
        from .sae import toylang_tokens

        self.tokens = toylang_tokens(model, n_docs, seed=seed, seq_len=seq_len)
        self.str_tokens = [model.to_str_tokens(row) for row in self.tokens]
        L = tc.cfg.n_layers
        names = [mlp_names(l)[0] for l in range(L)]
        _, cache = model.run_with_cache(self.tokens, names_filter=names)
        self.values, self.indices = [], []  # per layer (n_seq, pos, k)
        with torch.no_grad():
            for l in range(L):
                f = tc.encode(mlp_input(model, cache[names[l]], l).to(tc.W_enc.dtype), l)
                f[:, 0] = 0
                v, i = f.topk(tc.cfg.k, dim=-1)
                self.values.append(v)
                self.indices.append(i)

    def activations(self, layer: int, index: int) -> Tensor:
        """The feature's activation on every token of the texts: (n_seq, pos)."""
        hit = self.indices[layer] == index
        return (self.values[layer] * hit).sum(-1)

    def top(self, layer: int, index: int, k: int = 5, window: int = 6) -> list[tuple[str, float]]:
        """Up to k (context, activation) pairs, the activating token in [brackets], `window` tokens before it."""
        acts = self.activations(layer, index)
        vals, flat = acts.flatten().topk(min(k, acts.numel()))
        out = []
        for v, f in zip(vals.tolist(), flat.tolist()):
            if v <= 0:
                break
            s, p = divmod(f, acts.shape[1])
            toks = self.str_tokens[s]
            text = " ".join(t.strip() for t in toks[max(1, p - window) : p]) + f" [{toks[p].strip()}]"
            out.append((text.strip(), v))
        return out

    def density(self, layer: int, index: int) -> float:
        """Fraction of (non-BOS) tokens on which the feature fires."""
        return (self.activations(layer, index)[:, 1:] > 0).float().mean().item()


def label_feature(acts: Tensor, labels: Sequence[Sequence[str]], top_k: int = 20) -> tuple[str, float]:
    """The grammar label most common among a feature's `top_k` largest activations, and its share.

    acts (n_seq, pos) the feature's activations; labels: n_seq lists of pos labels (e.g.
    `digsite.sae.token_labels`). Only tokens where the feature fires (> 0) count; the share is
    over the tokens counted. Ties go to the label met first in order of decreasing activation.
    Returns ("", 0.0) for a feature that never fires.
    """
    if acts.ndim != 2 or len(labels) != acts.shape[0] or any(len(row) != acts.shape[1] for row in labels):
        raise ValueError("acts must be (n_seq, pos) and labels n_seq lists of pos labels")
    vals, flat = acts.flatten().topk(min(top_k, acts.numel()))
    counts: dict[str, int] = {}
    for v, f in zip(vals.tolist(), flat.tolist()):
        if v <= 0:
            break
        lab = labels[f // acts.shape[1]][f % acts.shape[1]]
        counts[lab] = counts.get(lab, 0) + 1
    if not counts:
        return "", 0.0
    best = max(counts, key=lambda k: counts[k])  # first maximum: insertion order is activation order
    return best, counts[best] / sum(counts.values())


# --------------------------------------------------------------------------------------
# Figures: interactive (plotly) and static (SVG, text)
# --------------------------------------------------------------------------------------


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
