"""Norm arithmetic, written once: LayerNorm and RMSNorm as TransformerLens names their parts.

A norm maps its input x (…, d_model) to `normalized * weight + bias` where
    scale      = sqrt(mean(centre(x) ** 2) + eps)      (…, 1)   TransformerLens's hook_scale
    normalized = centre(x) / scale                     (…, d)   TransformerLens's hook_normalized
and centre(x) = x - mean(x) for LayerNorm ("LN"), x itself for RMSNorm ("RMS", no bias either).
`weight` is the norm's effective weight (`norm_weight`): Gemma's RMSNorms store w and multiply
by (1 + w), every other family's norm multiplies by its stored weight.

With the scale held fixed the norm is linear in its input, which is what attribution needs:
the pieces of a residual stream, each centred, divided by the stream's scale and multiplied
by the weight, add up to the norm's output minus its bias (`normalize_stack`). The hook engine
(`hooks.py`), the activation cache (`cache.py`), the lenses and the SAE's logit effects all
call these functions, so the rule for each normalization type lives here only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORMALIZATION_TYPES = ("LN", "RMS")


def _check(normalization: str) -> None:
    if normalization not in NORMALIZATION_TYPES:
        raise ValueError(
            f"normalization must be one of {NORMALIZATION_TYPES} (model.cfg.normalization_type), not {normalization!r}"
        )


def centre(x: Tensor, normalization: str) -> Tensor:
    """x minus its mean over the last dim for LayerNorm; x unchanged for RMSNorm (which does not centre)."""
    _check(normalization)
    return x - x.mean(-1, keepdim=True) if normalization == "LN" else x


def norm_scale(x: Tensor, eps: float, normalization: str) -> Tensor:
    """The norm's divisor for x (…, d_model) -> (…, 1): TransformerLens's hook_scale."""
    _check(normalization)
    y = x.float()
    if torch.is_grad_enabled() and y.requires_grad:  # out of place: autograd needs the intermediates
        return (centre(y, normalization).pow(2).mean(-1, keepdim=True) + eps).sqrt().to(x.dtype)
    if normalization == "LN":  # (torch.var is several times slower on CPU)
        mean_square = (y - y.mean(-1, keepdim=True)).pow_(2).mean(-1, keepdim=True)
    else:
        mean_square = torch.linalg.vector_norm(y, dim=-1, keepdim=True).square_().div_(y.shape[-1])
    return mean_square.add_(eps).sqrt_().to(x.dtype)


def normalize(x: Tensor, scale: Tensor, normalization: str) -> Tensor:
    """centre(x) / scale: the norm's value before its weight and bias (TransformerLens's hook_normalized).

    x (…, d_model), scale (…, 1) broadcastable; computed in float32, returned in x's dtype.
    """
    return (centre(x.float(), normalization) / scale.float()).to(x.dtype)


#: Norm classes that multiply by (1 + weight), not weight (their weights are stored centred on 0).
ONE_PLUS_WEIGHT_NORMS = ("GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm")


def norm_weight(norm: nn.Module) -> Tensor | None:
    """What the norm multiplies the normalized value by (d_model,): (1 + w) for Gemma's RMSNorms, else w.

    None for a norm without a weight (a LayerNorm built with elementwise_affine=False).
    """
    weight = getattr(norm, "weight", None)
    if weight is None:
        return None
    return 1 + weight if type(norm).__name__ in ONE_PLUS_WEIGHT_NORMS else weight


def affine(normalized: Tensor, norm: nn.Module, add_bias: bool = True) -> Tensor:
    """normalized * weight (+ bias, if the norm has one and add_bias): the norm module's output."""
    weight = norm_weight(norm)
    y = normalized * weight.to(normalized.device) if weight is not None else normalized
    bias = getattr(norm, "bias", None)
    return y + bias.to(normalized.device) if add_bias and bias is not None else y


def apply_norm(x: Tensor, scale: Tensor, norm: nn.Module, normalization: str) -> Tensor:
    """The norm module's output for input x (…, d_model) divided by a given scale (…, 1)."""
    return affine(normalize(x, scale, normalization), norm)


def normalize_stack(
    stack: Tensor, scale: Tensor, norm: nn.Module, normalization: str, add_bias: bool = False
) -> Tensor:
    """Pieces of residual streams (…, pos, d_model) through a norm whose scale (…, pos, 1) is held fixed.

    Each piece is centred (LayerNorm only), divided by the given scale and multiplied by the
    weight. The bias only with add_bias: right when each entry is a whole stream, wrong when the
    entries are parts of one stream (the bias would be counted once per part).
    """
    return affine(normalize(stack, scale.to(stack.device), normalization), norm, add_bias)


def direction_through_norm(direction: Tensor, normalization: str, weight: Tensor | None = None) -> Tensor:
    """Where a residual direction (…, d_model) points after the norm, up to its positive scale.

    Centred for LayerNorm (not for RMSNorm), times the weight if given (pass `norm_weight(norm)`,
    which is (1 + w) for Gemma). The scale is a positive number common to every output
    coordinate, so it is left out.
    """
    d = centre(direction, normalization)
    return d * weight if weight is not None else d
