"""Seeded tiny models for the exercise checks and the tests: one home for every test model.

Each builder returns a small transformer with random weights drawn from a seed, in eval mode
with no dropout, wrapped as a `HookedModel`. `tiny_gpt2(...)` caches what it builds (the checks
reuse one model across calls, so each check stays well under a second); `forget(model)` drops a
cached model, so the next request builds a fresh one (the checks do this when a learner's
function changed a model's structure in place).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .hooks import HookedModel

__all__ = ["forget", "seeded_gpt2", "tiny", "tiny_gpt2", "toy_tokenizer"]

_CACHE: dict[tuple, HookedModel] = {}


def seeded_gpt2(tokenizer=None, seed: int = 0, **config: Any) -> HookedModel:
    """A small GPT-2 with random weights drawn from `seed` (eval mode, no dropout), hooked.

    `config` is passed to `GPT2Config` (sizes, vocabulary, initializer_range, token ids).
    Always builds a new model; use `tiny_gpt2` for a cached one.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    from .models import wrap

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **config)).eval()
    return wrap(model, tokenizer)


@lru_cache(maxsize=1)
def toy_tokenizer() -> Any:
    """The toy language's tokenizer (built offline, once)."""
    from .organisms.tokenizer import build_tokenizer

    return build_tokenizer()


def tiny_gpt2(tokenizer=None, seed: int = 0, biases: float = 0.0, **config: Any) -> HookedModel:
    """A cached `seeded_gpt2(tokenizer, seed, **config)`; `biases` > 0 redraws every bias and norm weight.

    With `biases`, each bias is drawn from N(0, biases²) and each LayerNorm weight from
    1 + N(0, biases²) (seeded), so exercises that forget a bias or a norm weight are caught.
    """
    key = (id(tokenizer), seed, biases, tuple(sorted(config.items())))
    if key not in _CACHE:
        hooked = seeded_gpt2(tokenizer, seed=seed, **config)
        if biases:
            g = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for name, p in hooked.model.named_parameters():
                    if name.endswith(".bias"):
                        p.copy_(torch.randn(p.shape, generator=g) * biases)
                    elif "ln" in name and name.endswith(".weight"):
                        p.copy_(1 + torch.randn(p.shape, generator=g) * biases)
        _CACHE[key] = hooked
    return _CACHE[key]


def tiny(n_layer: int = 2, toy: bool = False) -> HookedModel:
    """The checks' shared random GPT-2 (cached): 32 wide for a few layers, 16 wide for 12; 4 heads.

    Biases and norm weights are random (so forgetting one is caught); 12 layers catch layer names
    sorted as strings. `toy=True` uses the toy language's tokenizer and vocabulary, else 40 tokens.
    Token ids: <pad> 0, <bos> = <eos> 1.
    """
    tok = toy_tokenizer() if toy else None
    wide = n_layer < 12
    return tiny_gpt2(
        tok,
        vocab_size=len(tok) if toy else 40,
        n_positions=32,
        n_embd=32 if wide else 16,
        n_layer=n_layer,
        n_head=4,
        n_inner=64 if wide else 32,
        initializer_range=0.2,
        biases=0.1,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )


def forget(model: Any) -> bool:
    """Drop `model` (a HookedModel or its Hugging Face module) from the cache; True if it was cached."""
    for key, hooked in list(_CACHE.items()):
        if hooked is model or hooked.model is model:
            del _CACHE[key]
            return True
    return False
