"""Everything that depends on the transformers release: the hooked attention and every version shim.

Supporting a new transformers release should touch this file only. It holds:

- `digsite_attention`, an eager attention function with hook points for q, k, v, the scores
  and the pattern, registered with transformers' attention registry under
  `ATTN_IMPLEMENTATION` (and given eager's mask builder where transformers builds masks per
  implementation). `attention_callbacks(module)` is where the hook engine plugs in;
  `use_attention(model)` switches a model to it for the duration of a `with` block.
- the key-value cache, whose format and argument name changed across releases:
  `KeysValues` (the base run's keys and values, and a prefix of them as the model wants it),
  `kv_cache_from_output` and `forward_with_cache`.

Supported: transformers 4.49 to 5.x (tests/compat.py lists the releases CI runs).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from transformers import DynamicCache

ATTN_IMPLEMENTATION = "digsite_eager"
ATTENTION_KINDS = ("q", "k", "v", "attn_scores", "pattern")

AttentionCallback = Callable[[str, Tensor], Tensor]

# attention module -> the callbacks of the hook sets that hook it, innermost last
_ATTN_CALLBACKS: dict[nn.Module, list[AttentionCallback]] = {}


def add_attention_callback(module: nn.Module, callback: AttentionCallback) -> None:
    """Route this attention module's q, k, v, scores and pattern through callback(kind, x) -> x."""
    _ATTN_CALLBACKS.setdefault(module, []).append(callback)


def remove_attention_callback(module: nn.Module) -> None:
    """Undo the latest `add_attention_callback` on this module."""
    callbacks = _ATTN_CALLBACKS[module]
    callbacks.pop()
    if not callbacks:
        del _ATTN_CALLBACKS[module]


def digsite_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs,
) -> tuple[Tensor, Tensor]:
    """Eager attention that passes q, k, v, scores and pattern through the active hooks.

    query (batch, head, q_pos, d_head), key/value (batch, kv_head, k_pos, d_head), the mask
    additive (batch, 1, q_pos, k_pos) or boolean. Returns z (batch, q_pos, head, d_head) and
    the pattern, as every Hugging Face attention function does. Masked scores are -inf, as in
    TransformerLens; a query row with every key masked (padding) gets an all-zero pattern.
    `softcap` (Gemma 2): scores -> softcap * tanh(scores / softcap), before the mask, so
    hook_attn_scores sees capped scores. `sliding_window` (local attention): a query sees only
    keys fewer than that many positions back (applied here too, as some releases leave it to
    the attention function; where the mask already holds it, applying it again changes nothing).
    """
    callbacks = _ATTN_CALLBACKS.get(module, ())

    def hook(kind: str, x: Tensor) -> Tensor:
        for callback in callbacks:
            x = callback(kind, x)
        return x

    # hooks see (batch, pos, head, d_head), the TransformerLens layout
    q = hook("q", query.transpose(1, 2)).transpose(1, 2)
    k = hook("k", key.transpose(1, 2)).transpose(1, 2)
    v = hook("v", value.transpose(1, 2)).transpose(1, 2)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)  # in place: no second (…, q_pos, k_pos) buffer
    if softcap:
        scores = scores.div_(softcap).tanh_().mul_(softcap)
    q_len, k_len = scores.shape[-2:]
    if sliding_window:  # query i (cache position k_len - q_len + i) sees keys j with i - j < window
        offsets = torch.arange(k_len - q_len, k_len, device=scores.device)[:, None] - torch.arange(
            k_len, device=scores.device
        )
        scores.masked_fill_(offsets >= sliding_window, float("-inf"))
    if (attention_mask is None or attention_mask.shape[-2] == 1) and q_len > 1 and getattr(module, "is_causal", True):
        # transformers 4.4x leaves causality to SDPA's is_causal or gives a padding-only mask
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril_(k_len - q_len)
        scores.masked_fill_(~causal, float("-inf"))
    padded = False
    if attention_mask is not None:
        mask = attention_mask[..., : k.shape[-2]]
        if mask.dtype != torch.bool:  # additive: 0 where allowed, the dtype's lowest value where masked
            mask = mask > torch.finfo(mask.dtype).min / 2
        scores.masked_fill_(~mask, float("-inf"))
        padded = True
    scores = hook("attn_scores", scores)
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if padded:  # a query that may attend to nothing (left padding) gets zeros, not NaN
        pattern = pattern.nan_to_num(0.0)
    pattern = hook("pattern", pattern.to(q.dtype))
    weights = nn.functional.dropout(pattern, p=dropout, training=module.training)
    z = torch.matmul(weights, v).transpose(1, 2).contiguous()
    return z, pattern


try:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, digsite_attention)
except ImportError:  # transformers < 4.50: the registry is a plain dict
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS[ATTN_IMPLEMENTATION] = digsite_attention
try:  # transformers >= 4.53 builds the mask per attention implementation: ours wants eager's
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)
except ImportError:  # older versions give any non-SDPA/flash implementation an eager mask
    pass


#: Per model config: (how many `use_attention` blocks are open, the implementation before the first).
_ATTENTION_USERS: dict[int, tuple[int, str]] = {}


@contextmanager
def use_attention(model: nn.Module) -> Iterator[None]:
    """Run `model` with `digsite_attention` inside the block; its own implementation is restored after.

    Blocks may nest and close in any order (two `hooks()` contexts left out of order): the
    model's own implementation comes back when the last open block closes, not before.
    """
    config = model.config
    key = id(config)
    users, original = _ATTENTION_USERS.get(key, (0, config._attn_implementation))
    _ATTENTION_USERS[key] = (users + 1, original)
    config._attn_implementation = ATTN_IMPLEMENTATION
    try:
        yield
    finally:
        users, original = _ATTENTION_USERS.pop(key)
        if users > 1:
            _ATTENTION_USERS[key] = (users - 1, original)
        else:
            config._attn_implementation = original


# --- the key-value cache ----------------------------------------------------------------


@dataclass(frozen=True)
class KeysValues:
    """A run's keys and values, per layer (batch, kv_head, pos, d_head).

    `by_position`: the model reads its cache by the block's place in the block list (GPT-2 in
    transformers 4.4x, which uses tuples), not by the block's layer index.
    """

    layers: list[tuple[Tensor, Tensor]]
    by_position: bool

    @classmethod
    def from_cache(cls, cache) -> KeysValues:
        """From the cache object a forward with use_cache=True returned, whatever its release's format."""
        layers = getattr(cache, "layers", None)  # transformers >= 4.56; before, a tuple or an indexable cache
        if layers is not None:
            return cls([(layer.keys, layer.values) for layer in layers], False)
        if hasattr(cache, "key_cache"):  # 4.4x's HybridCache (Gemma 2) has no len()
            return cls(list(zip(cache.key_cache, cache.value_cache)), False)
        return cls([tuple(cache[l][:2]) for l in range(len(cache))], isinstance(cache, tuple))

    def prefix(self, p0: int, k: int, first_block: int):
        """A cache of positions < p0, repeated k times, for a pass that starts at `first_block`.

        A sliding-window layer's cache keeps only its last `window` positions: with a prompt
        longer than that, the early positions are gone, and this is an error, not a wrong cache.
        """
        lengths = {keys.shape[-2] for keys, _ in self.layers}
        if len(lengths) > 1:
            raise ValueError(
                f"This model's sliding-window layers cached only their last {min(lengths)} of {max(lengths)} "
                "positions, so a pass cannot start in the middle of the prompt. Use prompts no longer than the "
                "window, or patch_sweep(..., reuse_positions=False)."
            )
        cut = [
            (keys[:, :, :p0].repeat(k, 1, 1, 1), values[:, :, :p0].repeat(k, 1, 1, 1)) for keys, values in self.layers
        ]
        if self.by_position:
            return tuple(cut[first_block:])
        cache = DynamicCache()
        for l, (keys, values) in enumerate(cut):
            cache.update(keys, values, l)
        return cache


def kv_cache_from_output(output) -> KeysValues:
    """The keys and values of a model output computed with use_cache=True (transformers 5 / 4.x names)."""
    return KeysValues.from_cache(output["cache"] if "cache" in output else output["past_key_values"])


def forward_with_cache(model: nn.Module, cache, **kwargs):
    """model(**kwargs) with a key-value cache: transformers 5 calls the argument `cache`, 4.x `past_key_values`.

    Without an attention mask, an all-ones one over the cached and the new positions is passed:
    Gemma 2 under transformers 4.4x sizes its mask from the mask (else from the new positions only).
    """
    argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    if kwargs.get("attention_mask") is None and "input_ids" in kwargs:
        ids = kwargs["input_ids"]
        cached = cache[0][0].shape[-2] if isinstance(cache, tuple) else cache.get_seq_length()
        kwargs["attention_mask"] = torch.ones(ids.shape[0], cached + ids.shape[1], dtype=torch.long, device=ids.device)
    return model(use_cache=True, **{argument: cache}, **kwargs)
