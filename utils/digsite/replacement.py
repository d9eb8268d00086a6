"""The frozen, linear replacement model of one prompt (chapter 7's attribution graphs).

Replace every MLP by its transcoder (`digsite.transcoders`) and add back, as an *error*,
whatever the transcoder misses, so the replacement reproduces the model's forward pass exactly
on one prompt. Then freeze, for that prompt, every attention pattern and every norm's scale.
What is left is linear in the *sources* that write into the residual stream (the embeddings,
the features' activations, the errors), plus constants (the biases): `frozen_forward` runs it
forward from given sources, and the `*_adjoint` functions run its linear part backwards, as
`digsite.attribution` does to build a graph's edges. Everything is in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .hooks import HookedModel
    from .transcoders import Transcoders

F64 = torch.float64


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


def gpt2_blocks(model: HookedModel) -> list:
    """The model's GPT-2 blocks; a TypeError for any other architecture (the graphs need LayerNorm and learned positions)."""
    base = getattr(model.model, "transformer", None)
    if base is None or not hasattr(base, "wpe") or not hasattr(base.h[0].attn, "c_attn"):
        raise TypeError(
            "Attribution graphs here support GPT-2 models (LayerNorm, learned positions), like the "
            f"'toylang' organism; got a {model.cfg.architecture}."
        )
    return list(base.h)


def frozen_model(model: HookedModel, tc: Transcoders, cache) -> FrozenModel:
    """Weights in float64 plus the patterns and norm scales of the prompt in `cache` (batch 1).

    `cache` holds the names of `graph_hook_names`; scales are recomputed in float64 from the
    cached residual streams, as the model computes them (sqrt(variance + eps)).
    """
    blocks = gpt2_blocks(model)
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
