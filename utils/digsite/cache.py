"""ActivationCache: activations recorded by `run_with_cache`, and the residual-stream algebra on them.

Index it by full hook name (`cache["blocks.0.attn.hook_pattern"]`) or by TransformerLens
shorthand (`cache["pattern", 0]`, `cache["resid_post", -1]`, `cache["scale", 2, "ln1"]`).

The helpers work on the model's *raw* weights (nothing folded, unlike TransformerLens's
default HookedTransformer), so the final norm is applied to a stack of residual-stream
pieces with the scale cached during the forward pass. With that scale fixed the norm is
linear in its input, so attributions add up exactly to the model's own logits:
    normalized = sum_i (centre(piece_i) / scale) * weight + bias
("centre" only for LayerNorm; RMSNorm only divides; the arithmetic is `digsite.norms`).
Hence the numbers can differ from TransformerLens's, whose folded weights move the norm's
weight and centring into W_U.

The cache needs only a little of the model that made it (`CacheModel`): its sizes, W_U, the
per-head W_O, the norm modules and the tokenizer. Any object with those works.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Union

import torch
from torch import Tensor, nn

from .adapters import ModelConfig
from .norms import normalize_stack

PosSlice = Union[None, int, slice, list, Tensor]

_BLOCK = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
_ATTN = ("q", "k", "v", "z", "pattern", "attn_scores", "result")
_MLP = ("pre", "pre_linear", "post")
_ALIASES = {"attn": "pattern", "attn_logits": "attn_scores", "rot_q": "q", "rot_k": "k"}


def get_act_name(name: str, layer: int | None = None, sub: str | None = None, n_layers: int | None = None) -> str:
    """Full hook name from TransformerLens shorthand: ("pattern", 0) -> "blocks.0.attn.hook_pattern".

    sub picks the norm for "scale" / "normalized" / "out" ("ln1", "ln2"; no layer: the final norm).
    A negative layer counts from the end when n_layers is given.
    """
    name = _ALIASES.get(name, name)
    if layer is not None and layer < 0 and n_layers is not None:
        layer += n_layers
    if name in ("embed", "pos_embed"):
        return f"hook_{name}"
    if name in ("scale", "normalized", "out"):
        return f"ln_final.hook_{name}" if layer is None else f"blocks.{layer}.{sub or 'ln1'}.hook_{name}"
    if layer is None:
        raise KeyError(f"{name!r} needs a layer, e.g. cache[{name!r}, 0]")
    if name in _BLOCK:
        return f"blocks.{layer}.hook_{name}"
    if name in _ATTN:
        return f"blocks.{layer}.attn.hook_{name}"
    if name in _MLP:
        return f"blocks.{layer}.mlp.hook_{name}"
    raise KeyError(f"Unknown shorthand {name!r}; use a full hook name or one of {', '.join(_BLOCK + _ATTN + _MLP)}")


class CacheModel(Protocol):
    """What an `ActivationCache` reads from the model that made it (a `HookedModel` has all of it)."""

    cfg: ModelConfig
    tokenizer: object

    @property
    def W_U(self) -> Tensor: ...

    def W_O_layer(self, layer: int) -> Tensor: ...

    def norm_module(self, layer: int | None = None, which: str = "ln1") -> nn.Module: ...


def slice_pos(x: Tensor, pos_slice: PosSlice, dim: int = -2) -> Tensor:
    """Keep the positions pos_slice (int: drop the dim; slice / list / tensor: keep it) along dim."""
    if pos_slice is None:
        return x
    index = (slice(None),) * (dim % x.ndim) + (
        pos_slice if not isinstance(pos_slice, list) else torch.tensor(pos_slice),
    )
    return x[index]


class ActivationCache:
    """Cached activations by hook name, plus residual-stream decompositions.

    Shapes below are with a batch dim; after `remove_batch_dim()` drop `batch`.
    """

    def __init__(self, store: dict[str, Tensor], model: CacheModel, has_batch_dim: bool = True):
        self.store = store
        self.model = model
        self.has_batch_dim = has_batch_dim

    # --- dict-like ------------------------------------------------------------------------

    def _name(self, key: Union[str, tuple]) -> str:
        if isinstance(key, str) and (key in self.store or "." in key or key.startswith("hook_")):
            return key
        key = (key,) if isinstance(key, str) else key  # "embed", "scale": no layer needed
        return get_act_name(*key, n_layers=self.model.cfg.n_layers)

    def __getitem__(self, key: Union[str, tuple]) -> Tensor:
        name = self._name(key)
        if name not in self.store:
            raise KeyError(
                f"{name!r} is not in this cache ({len(self.store)} names cached). "
                f"Cache it with run_with_cache(tokens, names_filter=[..., {name!r}])."
            )
        return self.store[name]

    def __contains__(self, key: Union[str, tuple]) -> bool:
        return self._name(key) in self.store

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def keys(self):
        return self.store.keys()

    def values(self):
        return self.store.values()

    def items(self):
        return self.store.items()

    def __repr__(self) -> str:
        return f"ActivationCache({len(self.store)} names: {', '.join(list(self.store)[:4])}{', ...' if len(self.store) > 4 else ''})"

    def to(self, device: Union[str, torch.device]) -> ActivationCache:
        """A copy with every tensor on `device`."""
        return ActivationCache({k: v.to(device) for k, v in self.store.items()}, self.model, self.has_batch_dim)

    def remove_batch_dim(self) -> ActivationCache:
        """A copy without the batch dim (the batch must have size 1)."""
        if not self.has_batch_dim:
            return self
        sizes = {v.shape[0] for v in self.store.values()}
        if sizes != {1}:
            raise ValueError(f"remove_batch_dim needs a batch of 1, got batch sizes {sorted(sizes)}")
        return ActivationCache({k: v[0] for k, v in self.store.items()}, self.model, has_batch_dim=False)

    # --- residual stream ----------------------------------------------------------------

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        return_labels: bool = False,
    ) -> Union[Tensor, tuple[Tensor, list[str]]]:
        """The residual stream after each block so far: (component, batch, pos, d_model).

        Entries are resid_pre of layers 0..layer (and resid_mid if incl_mid); layer None,
        -1 or n_layers means all layers plus the final resid_post ("final_post"). With
        apply_ln each entry goes through the final norm (weight and bias: each entry is a
        whole residual stream), so entry @ W_U + b_U is the logit lens.
        """
        n_layers = self.model.cfg.n_layers
        layer = n_layers if layer is None or layer == -1 else layer
        parts, labels = [], []
        for l in range(min(layer + 1, n_layers)):
            parts.append(self["resid_pre", l])
            labels.append(f"{l}_pre")
            if incl_mid and l < layer and not self.model.cfg.parallel_attn_mlp:
                parts.append(self["resid_mid", l])
                labels.append(f"{l}_mid")
        if layer == n_layers:
            parts.append(self["resid_post", n_layers - 1])
            labels.append("final_post")
        stack = slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(
                stack, layer if layer < n_layers else None, pos_slice=pos_slice, add_bias=True
            )
        return (stack, labels) if return_labels else stack

    def decompose_resid(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ) -> Union[Tensor, tuple[Tensor, list[str]]]:
        """What each part wrote into the residual stream: (component, batch, pos, d_model).

        embed, pos_embed, then every block's attn_out and mlp_out before `layer` (None: all),
        plus layer's attn_out if mlp_input. They sum to resid_pre of `layer` (or the final
        resid_post). apply_ln divides by the cached scale and applies the weight, not the
        bias (a constant that belongs to no part: add it once if you need the sum).
        """
        cfg = self.model.cfg
        layer = cfg.n_layers if layer is None or layer == -1 else layer
        parts, labels = [], []
        if incl_embeds:
            labels += ["embed", "pos_embed"] if cfg.has_pos_embed else ["embed"]
            parts += [self[f"hook_{name}"] for name in labels]
        for l in range(layer):
            parts += [self["attn_out", l], self["mlp_out", l]]
            labels += [f"{l}_attn_out", f"{l}_mlp_out"]
        if mlp_input and layer < cfg.n_layers and not cfg.parallel_attn_mlp:
            parts.append(self["attn_out", layer])
            labels.append(f"{layer}_attn_out")
        stack = slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:
            ln_layer = layer if layer < cfg.n_layers else None
            stack = self.apply_ln_to_stack(stack, ln_layer, mlp_input=mlp_input, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack

    def stack_head_results(
        self,
        layer: int | None = -1,
        pos_slice: PosSlice = None,
        apply_ln: bool = False,
        return_labels: bool = False,
    ) -> Union[Tensor, tuple[Tensor, list[str]]]:
        """Each head's output z_h @ W_O[h] (no bias): (layer * head, batch, pos, d_model), labels "L0H3".

        Heads of the blocks before `layer` (-1 / None: all). Taken from hook_result if cached,
        else computed from hook_z. Summed over a block's heads plus b_O it is that block's attn_out.
        """
        cfg = self.model.cfg
        layer = cfg.n_layers if layer is None or layer == -1 else layer
        parts, labels = [], []
        for l in range(layer):
            if ("result", l) in self:
                result = slice_pos(self["result", l], pos_slice, dim=-3)
            else:
                z = slice_pos(self["z", l], pos_slice, dim=-3)
                result = torch.einsum("...hd,hdm->...hm", z, self.model.W_O_layer(l).to(z.device, z.dtype))
            parts.append(result.movedim(-2, 0))
            labels += [f"L{l}H{h}" for h in range(cfg.n_heads)]
        stack = torch.cat(parts)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer if layer < cfg.n_layers else None, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack

    def apply_ln_to_stack(
        self,
        stack: Tensor,
        layer: int | None = None,
        mlp_input: bool = False,
        pos_slice: PosSlice = None,
        add_bias: bool = False,
    ) -> Tensor:
        """Put a stack (…, pos, d_model) of residual pieces through a norm with the *cached* scale.

        layer None: the final norm (ln_final.hook_scale); else block `layer`'s ln1 (ln2 if
        mlp_input). LayerNorm centres each piece, RMSNorm does not; both divide by the scale and
        multiply by the norm's weight. The bias is added only with add_bias=True: right when each
        entry is a whole residual stream (logit lens), wrong when entries are parts that sum up
        (it would be counted once per part). pos_slice must match the one used on the stack.
        """
        cfg = self.model.cfg
        if layer is None or layer == cfg.n_layers or layer == -1:
            scale, norm = self["ln_final.hook_scale"], self.model.norm_module(None)
        else:
            which = "ln2" if mlp_input and not cfg.parallel_attn_mlp else "ln1"
            scale, norm = self["scale", layer, which], self.model.norm_module(layer, which)
        return normalize_stack(stack, slice_pos(scale, pos_slice), norm, cfg.normalization_type, add_bias)

    def logit_attrs(
        self,
        stack: Tensor,
        tokens: Union[int, str, Tensor],
        incorrect_tokens: Union[int, str, Tensor, None] = None,
        pos_slice: PosSlice = None,
    ) -> Tensor:
        """How much each stack entry pushes the logit of `tokens` (minus `incorrect_tokens`): (…, batch).

        stack (…, batch, d_model) — or (…, batch, pos, d_model) with pos_slice picking the
        position — should already have been through `apply_ln_to_stack`. tokens: one id or
        single-token string, or ids (batch,) with one answer per prompt. No unembedding bias.
        """
        stack = slice_pos(stack, pos_slice)
        attrs = self._token_dot(stack, tokens)
        return attrs - self._token_dot(stack, incorrect_tokens) if incorrect_tokens is not None else attrs

    def _token_dot(self, stack: Tensor, tokens: Union[int, str, Tensor]) -> Tensor:
        if isinstance(tokens, str):
            ids = self.model.tokenizer.encode(tokens, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"{tokens!r} is {len(ids)} tokens, not one")
            tokens = ids[0]
        directions = self.model.W_U[:, tokens].to(stack.device, stack.dtype)  # (d_model,) or (d_model, batch)
        if directions.ndim == 1:
            return stack @ directions
        return (stack * directions.T).sum(-1)
