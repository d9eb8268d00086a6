"""Checks for chapter 4: toy models of superposition and sparse autoencoders.

Every check builds its own small seeded inputs (random tensors, a random SAE, or a tiny
random-init GPT-2 built once and cached), so it is fast and independent of trained weights.
References come from `digsite.superposition` and `digsite.sae`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ..fixtures import tiny
from ..sae import SAE, SAEConfig, ce_losses, normalize_rows, splice_hook
from ..solutions.ch04 import (
    ce_loss_recovered,
    explained_variance,
    feature_dimensionality,
    l0,
    latent_frequencies,
    logit_effects,
    sae_forward,
    sae_loss,
    steering_hook,
    top_activations,
    topk_activation,
    toy_forward,
)
from .core import exercise_check, verify


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 4.1 the toy model ---------------------------------------------------------------------


def _toy_no_relu(W: Tensor, b: Tensor, features: Tensor) -> Tensor:
    h = torch.einsum("ihf,bif->bih", W, features)
    return torch.einsum("ihf,bih->bif", W, h) + b


def _toy_no_bias(W: Tensor, b: Tensor, features: Tensor) -> Tensor:
    h = torch.einsum("ihf,bif->bih", W, features)
    return torch.relu(torch.einsum("ihf,bih->bif", W, h))


def _toy_bias_after_relu(W: Tensor, b: Tensor, features: Tensor) -> Tensor:
    h = torch.einsum("ihf,bif->bih", W, features)
    return torch.relu(torch.einsum("ihf,bih->bif", W, h)) + b


def _toy_instances_mixed(W: Tensor, b: Tensor, features: Tensor) -> Tensor:
    h = torch.einsum("ihf,bjf->bih", W, features)  # sums over instances: every instance sees all inputs
    return torch.relu(torch.einsum("ihf,bih->bif", W, h) + b)


@exercise_check(
    reference=toy_forward,
    wrong_answers={
        "The ReLU is missing: negative outputs should be clipped to 0.": _toy_no_relu,
        "The bias b is missing: add it before the ReLU.": _toy_no_bias,
        "You added the bias after the ReLU; it goes inside, ReLU(W^T W x + b).": _toy_bias_after_relu,
        (
            "Your einsum sums over instances, so each instance sees the others' inputs: keep the "
            "instance index on both sides."
        ): _toy_instances_mixed,
    },
)
def check_toy_forward(fn) -> None:
    """Your `toy_forward(W, b, features)` must compute ReLU(W^T W x + b) for each instance separately."""
    g = _gen(0)
    for batch, inst, hidden, feat in ((7, 3, 2, 5), (1, 2, 3, 4)):
        W = torch.randn(inst, hidden, feat, generator=g)
        b = torch.randn(inst, feat, generator=g) - 0.5
        x = torch.rand(batch, inst, feat, generator=g) * (torch.rand(batch, inst, feat, generator=g) < 0.5)
        verify(fn, W, b, x, what=f"the toy model's output (batch {batch}, inst {inst}, feat {feat})")


# --- 4.2 feature dimensionality -------------------------------------------------------------


def _dim_unnormalised(W: Tensor) -> Tensor:
    overlaps = torch.einsum("ihf,ihg->ifg", W, W)
    return W.norm(dim=1) ** 2 / overlaps.pow(2).sum(-1)


def _dim_norm_not_squared(W: Tensor) -> Tensor:
    W_hat = W / W.norm(dim=1, keepdim=True)
    overlaps = torch.einsum("ihf,ihg->ifg", W_hat, W)
    return W.norm(dim=1) / overlaps.pow(2).sum(-1)


def _dim_over_hidden(W: Tensor) -> Tensor:
    W_hat = W / W.norm(dim=2, keepdim=True)  # normalises over features instead of hidden dims
    overlaps = torch.einsum("ihf,ihg->ifg", W_hat, W)
    return W.norm(dim=1) ** 2 / overlaps.pow(2).sum(-1)


@exercise_check(
    reference=feature_dimensionality,
    wrong_answers={
        "The denominator uses W_i itself; it should use the unit vector W_i / ||W_i||.": _dim_unnormalised,
        "The numerator is ||W_i||; it is the squared norm.": _dim_norm_not_squared,
        (
            "You normalised over features; a feature's vector is a column W[:, :, i], so normalise over "
            "the hidden dimension."
        ): _dim_over_hidden,
    },
)
def check_feature_dimensionality(fn) -> None:
    """Your `feature_dimensionality(W)` must give D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 per instance."""
    g = _gen(1)
    verify(fn, torch.randn(4, 3, 6, generator=g) * 2, what="D (inst, feat) on random W (4 instances)")
    verify(
        fn, torch.tensor([[[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]]), what="D for an antipodal pair + a dedicated feature"
    )
    verify(fn, torch.randn(1, 5, 2, generator=g) * 0.3, what="D (inst, feat) on small random W (1 instance, 5 hidden)")


# --- 4.3 the SAE forward pass ---------------------------------------------------------------


def _fwd_unnormalised(x, W_enc, b_enc, W_dec, b_dec):
    f = torch.relu((x - b_dec) @ W_enc + b_enc)
    return f, f @ W_dec + b_dec


def _fwd_normalise_columns(x, W_enc, b_enc, W_dec, b_dec):
    f = torch.relu((x - b_dec) @ W_enc + b_enc)
    return f, f @ (W_dec / W_dec.norm(dim=0, keepdim=True)) + b_dec


def _fwd_no_relu(x, W_enc, b_enc, W_dec, b_dec):
    f = (x - b_dec) @ W_enc + b_enc
    return f, f @ normalize_rows(W_dec) + b_dec


def _fwd_no_b_dec_in(x, W_enc, b_enc, W_dec, b_dec):
    f = torch.relu(x @ W_enc + b_enc)
    return f, f @ normalize_rows(W_dec) + b_dec


def _sae_params(seed: int, d_in: int = 6, d_sae: int = 10) -> tuple[Tensor, ...]:
    g = _gen(seed)
    W_enc = torch.randn(d_in, d_sae, generator=g)
    b_enc = torch.randn(d_sae, generator=g) * 0.5
    W_dec = torch.randn(d_sae, d_in, generator=g) * 3  # deliberately not unit norm
    b_dec = torch.randn(d_in, generator=g)
    return W_enc, b_enc, W_dec, b_dec


@exercise_check(
    reference=sae_forward,
    wrong_answers={
        "The decoder rows are not normalised to unit length before decoding.": _fwd_unnormalised,
        "You normalised the decoder's columns; each latent's direction is a ROW of W_dec.": _fwd_normalise_columns,
        "The ReLU is missing: negative outputs should be clipped to 0.": _fwd_no_relu,
        "The encoder sees x itself; subtract b_dec first, (x - b_dec) @ W_enc + b_enc.": _fwd_no_b_dec_in,
    },
)
def check_sae_forward(fn) -> None:
    """Your `sae_forward(x, W_enc, b_enc, W_dec, b_dec)` must return (f, x_hat) with unit-norm decoder rows."""
    why = "Return the pair (f, x_hat): later cells unpack it."
    verify(
        fn,
        torch.randn(2, 5, 6, generator=_gen(3)),
        *_sae_params(2),
        what="(f, x_hat) for x of shape (2, 5, 6)",
        why=why,
    )
    verify(
        fn,
        torch.randn(1, 4, generator=_gen(4)),
        *_sae_params(5, d_in=4, d_sae=7),
        what="(f, x_hat) for x of shape (1, 4)",
        why=why,
    )


# --- 4.4 the loss ---------------------------------------------------------------------------


def _loss_l1_pre(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    pre = (x - b_dec) @ W_enc + b_enc
    _, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * pre.abs().sum(-1).mean()


def _loss_l1_recon(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    _, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * x_hat.abs().sum(-1).mean()


def _loss_l1_weights(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    _, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * W_enc.abs().sum()


def _loss_l1_mean_over_latents(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * f.abs().mean()


@exercise_check(
    reference=sae_loss,
    wrong_answers={
        "Your L1 penalty is on the pre-activations; penalise the latents f after the ReLU.": _loss_l1_pre,
        "Your L1 penalty is on the reconstruction; sparsity is about the latents f.": _loss_l1_recon,
        "Your L1 penalty is on the encoder weights; it belongs on the latent activations.": _loss_l1_weights,
        "Your L1 averages over latents; sum |f| over latents, then average over tokens.": _loss_l1_mean_over_latents,
    },
)
def check_sae_loss(fn) -> None:
    """Your `sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff)` must be MSE + l1_coeff * mean_tokens sum_latents |f|."""
    verify(
        fn,
        torch.randn(9, 6, generator=_gen(5)),
        *_sae_params(4),
        0.3,
        what="the loss with l1_coeff=0.3 (9 tokens)",
        why="Return a scalar tensor: training calls .backward() on it.",
    )
    verify(
        fn,
        torch.randn(1, 5, generator=_gen(6)),
        *_sae_params(7, d_in=5, d_sae=3),
        1.7,
        what="the loss with l1_coeff=1.7 (1 token)",
        why="Return a scalar tensor: training calls .backward() on it.",
    )


# --- 4.5 TopK -------------------------------------------------------------------------------


def _topk_plus_one(pre: Tensor, k: int) -> Tensor:
    return topk_activation(pre, k + 1)


def _topk_minus_one(pre: Tensor, k: int) -> Tensor:
    return topk_activation(pre, k - 1)


def _topk_over_batch(pre: Tensor, k: int) -> Tensor:
    values, idx = torch.relu(pre).topk(k, dim=0)
    return torch.zeros_like(pre).scatter(0, idx, values)


def _topk_smallest(pre: Tensor, k: int) -> Tensor:
    values, idx = torch.relu(pre).topk(k, dim=-1, largest=False)
    return torch.zeros_like(pre).scatter(-1, idx, values)


def _topk_no_relu(pre: Tensor, k: int) -> Tensor:
    values, idx = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, values)


@exercise_check(
    reference=topk_activation,
    wrong_answers={
        "You keep k + 1 latents per token; keep exactly k.": _topk_plus_one,
        "You keep k - 1 latents per token; keep exactly k.": _topk_minus_one,
        (
            "You took the top k over the batch; TopK picks k latents for each token (the last dimension)."
        ): _topk_over_batch,
        "You keep the k smallest values; keep the largest.": _topk_smallest,
        "Negative pre-activations survive in your output: apply a ReLU too.": _topk_no_relu,
    },
)
def check_topk_activation(fn) -> None:
    """Your `topk_activation(pre, k)` must keep each token's k largest (ReLU'd) pre-activations."""
    g = _gen(6)
    verify(fn, torch.randn(4, 3, 12, generator=g), 3, what="TopK with k=3 on (4, 3, 12)")
    verify(fn, torch.randn(1, 9, generator=g), 1, what="TopK with k=1 on (1, 9)")
    verify(fn, torch.randn(5, 12, generator=g) - 2.0, 4, what="TopK with k=4 when most pre-activations are negative")


# --- 4.6 L0 ---------------------------------------------------------------------------------


def _l0_per_batch(f: Tensor) -> Tensor:
    return (f != 0).flatten(0, -2).any(0).float().sum()


def _l0_total(f: Tensor) -> Tensor:
    return (f != 0).float().sum()


def _l0_fraction(f: Tensor) -> Tensor:
    return (f != 0).float().mean()


def _sparse_latents(seed: int, shape: tuple[int, ...], density: float) -> Tensor:
    g = _gen(seed)
    return torch.rand(shape, generator=g) * (torch.rand(shape, generator=g) < density)


@exercise_check(
    reference=l0,
    wrong_answers={
        (
            "You counted latents active anywhere in the batch; L0 counts per token, then averages over tokens."
        ): _l0_per_batch,
        "You counted every non-zero in the batch; average the per-token count over tokens.": _l0_total,
        "You returned a fraction of latents; L0 is a count of active latents per token.": _l0_fraction,
    },
)
def check_l0(fn) -> None:
    """Your `l0(f)` must count the non-zero latents of each token and average over all tokens."""
    why = "Return a scalar tensor: later cells log and compare it."
    verify(fn, _sparse_latents(7, (50, 40), 0.1), what="L0 of latents of shape (50, 40)", why=why)
    verify(fn, _sparse_latents(8, (1, 6, 9), 0.4), what="L0 of latents of shape (1, 6, 9)", why=why)


# --- 4.7 explained variance -----------------------------------------------------------------


def _ev_uncentred(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum()


def _ev_unexplained(x: Tensor, x_hat: Tensor) -> Tensor:
    return (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()


def _ev_centred_over_dims(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - (x - x_hat).pow(2).sum() / (x - x.mean(-1, keepdim=True)).pow(2).sum()


@exercise_check(
    reference=explained_variance,
    wrong_answers={
        (
            "The denominator is ||x||^2; the variance is measured around the mean token, ||x - mean(x)||^2."
        ): _ev_uncentred,
        "You returned the unexplained fraction; explained variance is 1 minus it.": _ev_unexplained,
        (
            "You subtracted each token's own mean over dimensions; subtract the mean token (the mean over the batch)."
        ): _ev_centred_over_dims,
    },
)
def check_explained_variance(fn) -> None:
    """Your `explained_variance(x, x_hat)` must be 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2."""
    g = _gen(8)
    x = torch.randn(64, 8, generator=g) + 3 * torch.randn(8, generator=g)
    verify(fn, x, x + 0.5 * torch.randn(64, 8, generator=g), what="explained variance of a good reconstruction (64, 8)")
    y = torch.randn(5, 3, generator=g) - 2
    verify(
        fn, y, 2 * torch.randn(5, 3, generator=g), what="explained variance of a bad reconstruction (negative), (5, 3)"
    )


# --- 4.8 latent frequencies -----------------------------------------------------------------


def _freq_per_batch(f: Tensor) -> Tensor:
    return (f > 0).any(0).float()


def _freq_counts(f: Tensor) -> Tensor:
    return (f > 0).float().sum(0)


def _freq_mean_activation(f: Tensor) -> Tensor:
    return f.mean(0)


@exercise_check(
    reference=latent_frequencies,
    wrong_answers={
        (
            "You marked whether a latent fired anywhere; the frequency is the FRACTION of tokens on which it fires."
        ): _freq_per_batch,
        "You returned counts; divide by the number of tokens.": _freq_counts,
        "You averaged the activation values; count whether each latent fires (f > 0).": _freq_mean_activation,
    },
)
def check_latent_frequencies(fn) -> None:
    """Your `latent_frequencies(f)` must give, per latent, the fraction of tokens on which it fires."""
    f = _sparse_latents(9, (200, 30), 0.05)
    f[:, :3] = 0.0  # three dead latents
    verify(fn, f, what="firing frequencies (d_sae,) over 200 tokens")
    verify(fn, _sparse_latents(10, (3, 7), 0.5), what="firing frequencies (d_sae,) over 3 tokens")


# --- 4.9 CE loss recovered ------------------------------------------------------------------


def _ce_no_baseline(model, sae, tokens, hook_name):
    clean, spliced, _ = ce_losses(model, sae, tokens, hook_name)
    return clean / spliced


def _ce_increase(model, sae, tokens, hook_name):
    clean, spliced, _ = ce_losses(model, sae, tokens, hook_name)
    return 1 - (spliced - clean) / clean


def _ce_splice_bos_too(model, sae, tokens, hook_name):
    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        spliced = model.run_with_hooks(
            tokens, fwd_hooks=[(hook_name, splice_hook(sae, skip_bos=False))], return_type="loss"
        ).item()
        zero = model.run_with_hooks(
            tokens, fwd_hooks=[(hook_name, lambda x, hook: torch.zeros_like(x))], return_type="loss"
        ).item()
    return (zero - spliced) / (zero - clean)


@lru_cache(maxsize=2)
def _tiny_model_and_sae(n_layer: int = 2):
    """A random GPT-2 (hooked; 2 layers, or 12), a random TopK SAE on one of its residual streams, tokens."""
    model = tiny(n_layer)
    d = model.cfg.d_model
    hook_name = "blocks.1.hook_resid_pre" if n_layer < 12 else "blocks.10.hook_resid_pre"
    sae = SAE(SAEConfig(d_in=d, d_sae=2 * d, k=8 if n_layer < 12 else 3, hook_name=hook_name), seed=n_layer).eval()
    batch = 4 if n_layer < 12 else 1
    tokens = torch.cat(
        [torch.ones(batch, 1, dtype=torch.long), torch.randint(3, 40, (batch, 15), generator=_gen(10))], dim=1
    )
    return model, sae, tokens


@exercise_check(
    reference=ce_loss_recovered,
    wrong_answers={
        (
            "Your score has no floor: compare with zero-ablation, (CE_zero - CE_sae) / (CE_zero - CE_clean)."
        ): _ce_no_baseline,
        "You measured the relative increase of the loss; the score uses zero-ablation as its floor.": _ce_increase,
        "You also replaced the BOS position; leave position 0 alone in both interventions.": _ce_splice_bos_too,
    },
)
def check_ce_loss_recovered(fn) -> None:
    """Your `ce_loss_recovered(model, sae, tokens, hook_name)` must use zero-ablation as the floor, BOS kept."""
    for n in (2, 12):
        model, sae, tokens = _tiny_model_and_sae(n)
        verify(
            fn,
            model,
            sae,
            tokens,
            sae.cfg.hook_name,
            what=f"CE loss recovered at {sae.cfg.hook_name} ({n} layers)",
            atol=1e-3,
            rtol=1e-3,
        )


# --- 4.10 top-activating contexts -----------------------------------------------------------


def _top_swapped(latent_acts: Tensor, k: int):
    values, flat = latent_acts.flatten().topk(k)
    return flat % latent_acts.shape[0], flat // latent_acts.shape[0], values


def _top_bottom(latent_acts: Tensor, k: int):
    values, flat = latent_acts.flatten().topk(k, largest=False)
    return flat // latent_acts.shape[1], flat % latent_acts.shape[1], values


def _top_one_per_sequence(latent_acts: Tensor, k: int):
    best, pos = latent_acts.max(dim=1)
    values, seq = best.topk(k)
    return seq, pos[seq], values


@exercise_check(
    reference=top_activations,
    wrong_answers={
        (
            "You unravelled the flat index with the wrong length: the sequence is index // pos, the "
            "position index % pos."
        ): _top_swapped,
        "You returned the smallest activations; return the largest.": _top_bottom,
        (
            "You kept one position per sequence; two of the top activations may come from the same sequence."
        ): _top_one_per_sequence,
    },
)
def check_top_activations(fn) -> None:
    """Your `top_activations(latent_acts, k)` must return (seq, pos, values) of the k largest activations."""
    g = _gen(11)
    acts = torch.relu(torch.randn(6, 9, generator=g))
    acts[2, 3], acts[2, 7], acts[4, 0] = 9.0, 8.0, 7.0  # two of the top three share a sequence
    why = "Return the triple (seq indices, pos indices, values): later cells unpack it."
    verify(fn, acts, 5, what="(seq, pos, values) of the top 5 in (6, 9)", why=why)
    verify(fn, torch.rand(2, 11, generator=g), 3, what="(seq, pos, values) of the top 3 in (2, 11)", why=why)


# --- 4.11 logit effects ---------------------------------------------------------------------


def _effects_no_ln(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return (direction - direction.mean()) @ W_U


def _effects_no_centre(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return (direction * ln_weight) @ W_U


def _effects_raw(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return direction @ W_U


@exercise_check(
    reference=logit_effects,
    wrong_answers={
        "The final LayerNorm's weight is missing: multiply the centred direction by it.": _effects_no_ln,
        "LayerNorm centres its input: subtract the direction's mean first.": _effects_no_centre,
        ("The direction goes through the final LayerNorm (centre, then scale by its weight) before W_U."): _effects_raw,
    },
)
def check_logit_effects(fn) -> None:
    """Your `logit_effects(direction, W_U, ln_weight)` must centre, scale by the LN weight, then unembed."""
    g = _gen(12)
    verify(
        fn,
        torch.randn(8, generator=g) + 1.0,
        torch.randn(8, 20, generator=g),
        torch.rand(8, generator=g) * 2 + 0.2,
        what="the logit effect of a direction (d_model 8, d_vocab 20)",
    )
    verify(
        fn,
        torch.randn(5, generator=g) - 2.0,
        torch.randn(5, 3, generator=g),
        torch.randn(5, generator=g),
        what="the logit effect of a direction (d_model 5, d_vocab 3, signed LN weights)",
    )


# --- 4.12 steering --------------------------------------------------------------------------


def _steer_unnormalised(direction: Tensor, alpha: float):
    return lambda x, hook: x + alpha * direction


def _steer_last_position(direction: Tensor, alpha: float):
    unit = direction / direction.norm()

    def hook(x, hook):
        out = x.clone()
        out[:, -1] += alpha * unit
        return out

    return hook


def _steer_replace(direction: Tensor, alpha: float):
    unit = direction / direction.norm()
    return lambda x, hook: (alpha * unit).expand_as(x).clone()


@exercise_check(
    reference=steering_hook,
    wrong_answers={
        "You added the raw direction; normalise it to unit length so alpha alone sets the strength.": _steer_unnormalised,
        "You steer only the last position; add the direction at every position.": _steer_last_position,
        "Your hook replaces the activation; steering ADDS the direction to it.": _steer_replace,
    },
)
def check_steering_hook(fn) -> None:
    """Your `steering_hook(direction, alpha)` must return a hook adding alpha * unit(direction) at every position."""
    g = _gen(13)
    for direction, alpha, x in (
        (torch.randn(8, generator=g) * 3, 4.0, torch.randn(2, 5, 8, generator=g)),
        (torch.randn(3, generator=g) * 0.2, -1.5, torch.randn(1, 2, 3, generator=g)),
    ):
        verify(
            fn,
            direction,
            alpha,
            use=lambda hook, x=x: hook(x.clone(), None),
            what=f"an activation of shape {tuple(x.shape)} after your hook (alpha={alpha})",
            why="steering_hook returns a function hook(activation, hook) -> new activation.",
        )
