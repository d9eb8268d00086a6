"""Attribution graphs: which features, through which features, make one prediction (chapter 7).

On one prompt, the replacement model with frozen attention and norms (`digsite.replacement`)
is linear in its *sources*:

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
`attribution_graph` builds it with one backward sweep per batch of receivers.

Node order in every matrix: features (sorted by layer, position, index), errors (layer-major,
then position), embeddings (by position), the target last. `adjacency[t, s]`: rows receive,
columns send. Everything is computed in float64 from one float32 forward pass. What to do with
a graph: `digsite.pruning` (influence, pruning, paths), `digsite.interventions` (testing it),
`digsite.feature_contexts` (what features fire on), `digsite.graph_plot` (figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .replacement import (
    F64,
    FrozenModel,
    frozen_attention,
    frozen_attention_adjoint,
    frozen_forward,
    frozen_ln,
    frozen_ln_adjoint,
    frozen_model,
    gpt2_blocks,
)
from .transcoders import Transcoders, mlp_input, mlp_names

if TYPE_CHECKING:
    from .hooks import HookedModel

Target = str | int | tuple | Tensor


def graph_hook_names(n_layers: int) -> list[str]:
    """The hook points one forward pass must cache to build a graph."""
    names = []
    for l in range(n_layers):
        names += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.attn.hook_pattern", *mlp_names(l)]
    return names + [f"blocks.{n_layers - 1}.hook_resid_post"]


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
    gpt2_blocks(model)
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
