"""What each transcoder feature fires on: its top contexts in a small set of toy-language texts (chapter 7).

A graph's "L1 F402" explains nothing until the feature has a name. `FeatureContexts` runs the
transcoders once over a fixed set of texts the organism never trained on and keeps every
feature's activations; `label_feature` names a feature by the grammar label (or the next word)
its strongest activations sit on — a hypothesis about the feature, not its definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .solutions.ch07 import feature_label
from .transcoders import Transcoders, mlp_input, mlp_names

if TYPE_CHECKING:
    from .hooks import HookedModel


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
    Returns ("", 0.0) for a feature that never fires. (Exercise 7.7's `feature_label`, with its
    input checked.)
    """
    if acts.ndim != 2 or len(labels) != acts.shape[0] or any(len(row) != acts.shape[1] for row in labels):
        raise ValueError("acts must be (n_seq, pos) and labels n_seq lists of pos labels")
    return feature_label(acts, [list(row) for row in labels], top_k)
