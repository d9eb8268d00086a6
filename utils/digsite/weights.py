"""A hooked model's weights in TransformerLens's shapes, read from the raw Hugging Face modules.

`Weights` is a mixin of `HookedModel` (it needs `self.model`, `self.adapter`, `self.cfg`,
`self._blocks`, `self.device`). Nothing is folded or copied: W_U is the unembedding's
transpose, W_Q/W_K/W_V are views of the (possibly fused) projections reshaped per head, and
the norms are the model's own modules (their arithmetic is in `digsite.norms`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .adapters import Adapter, ModelConfig, in_out_weight


class Weights:
    """W_E, W_pos, W_U, b_U, W_Q, W_K, W_V, W_O, b_O and the norm modules of the wrapped model."""

    model: nn.Module
    adapter: Adapter
    cfg: ModelConfig
    _blocks: list[nn.Module]
    device: torch.device

    @property
    def W_E(self) -> Tensor:
        """Token embedding (d_vocab, d_model)."""
        return self.model.get_input_embeddings().weight

    @property
    def W_pos(self) -> Tensor:
        """Learned position embedding (n_ctx, d_model); rotary models have none."""
        if not self.adapter.pos_embed:
            raise AttributeError(f"{self.cfg.architecture} uses rotary embeddings: there is no W_pos.")
        return self.model.get_submodule(self.adapter.pos_embed).weight

    @property
    def W_U(self) -> Tensor:
        """Unembedding (d_model, d_vocab)."""
        return self.model.get_output_embeddings().weight.T

    @property
    def b_U(self) -> Tensor:
        """Unembedding bias (d_vocab,), zeros when the model has none."""
        bias = self.model.get_output_embeddings().bias
        return bias if bias is not None else torch.zeros(self.cfg.d_vocab, device=self.device, dtype=self.W_U.dtype)

    def _qkv(self, i: int) -> Tensor:
        cfg = self.cfg
        return torch.stack(
            [self.adapter.qkv(b.get_submodule(self.adapter.attn), cfg.n_heads, cfg.n_kv_heads)[i] for b in self._blocks]
        )

    @property
    def W_Q(self) -> Tensor:
        """Query weights (n_layers, n_heads, d_model, d_head), before rotary."""
        return self._qkv(0)

    @property
    def W_K(self) -> Tensor:
        """Key weights (n_layers, n_kv_heads, d_model, d_head), before rotary."""
        return self._qkv(1)

    @property
    def W_V(self) -> Tensor:
        """Value weights (n_layers, n_kv_heads, d_model, d_head)."""
        return self._qkv(2)

    def W_O_layer(self, layer: int) -> Tensor:
        """One block's output weights per head (n_heads, d_head, d_model)."""
        cfg = self.cfg
        o_proj = self._blocks[layer].get_submodule(self.adapter.o_proj)
        return in_out_weight(o_proj).reshape(cfg.n_heads, cfg.d_head, cfg.d_model)

    @property
    def W_O(self) -> Tensor:
        """Output weights per head (n_layers, n_heads, d_head, d_model): result_h = z_h @ W_O[l, h]."""
        return torch.stack([self.W_O_layer(l) for l in range(self.cfg.n_layers)])

    @property
    def b_O(self) -> Tensor:
        """Attention output bias (n_layers, d_model), zeros where there is none."""
        biases = [getattr(b.get_submodule(self.adapter.o_proj), "bias", None) for b in self._blocks]
        zeros = torch.zeros(self.cfg.d_model, device=self.device, dtype=self.W_E.dtype)
        return torch.stack([b if b is not None else zeros for b in biases])

    def norm_module(self, layer: int | None = None, which: str = "ln1") -> nn.Module:
        """The final norm (layer None) or a block's ln1 / ln2 (or, with post-norms, ln1_post / ln2_post) module."""
        if layer is None:
            return self.model.get_submodule(self.adapter.ln_final)
        paths = {n: getattr(self.adapter, n) for n in ("ln1", "ln2", "ln1_post", "ln2_post")}
        if which not in paths:
            raise ValueError(f"which must be one of {', '.join(paths)}, not {which!r}")
        if paths[which] is None:
            raise ValueError(
                f"A {self.cfg.architecture} block has no {which} norm (see docs/models.md); "
                f"it has: {', '.join(n for n, p in paths.items() if p) or 'none'}."
            )
        return self._blocks[layer].get_submodule(paths[which])
