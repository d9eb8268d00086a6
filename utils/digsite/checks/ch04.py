"""Checks for chapter 4: toy models of superposition and sparse autoencoders.

Every check builds its own small seeded inputs (random tensors, a random SAE, or a tiny
random-init GPT-2 built once and cached), so it is fast and independent of trained weights.
References are the course's own answers (`digsite.solutions.ch04`); the "build it yourself"
exercises 4.13 and 4.14 are checked against the package's own trainer and resampling routine.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ..fixtures import tiny
from ..sae import SAE, SAEConfig, ce_losses, normalize_rows, resample_dead_latents, splice_hook, train_sae
from ..solutions.ch04 import (
    auxk_loss,
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


# --- 4.13 the training loop -------------------------------------------------------------------

_PARAM_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


def _sae_from(params: dict[str, Tensor]) -> SAE:
    """A ReLU SAE holding copies of params (W_enc (d_in, d_sae), b_enc, W_dec (d_sae, d_in), b_dec)."""
    d_in, d_sae = params["W_enc"].shape
    autoencoder = SAE(SAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        for name in _PARAM_NAMES:
            getattr(autoencoder, name).copy_(params[name])
    return autoencoder


def _package_train(params, acts, l1_coeff, steps, batch_size, lr, seed):
    """The package's trainer, `sae.train_sae`, on an SAE holding `params`: the reference of 4.13."""
    autoencoder = _sae_from(params)
    autoencoder.cfg.l1_coeff = l1_coeff
    train_sae(autoencoder, acts, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return {name: getattr(autoencoder, name).detach().clone() for name in _PARAM_NAMES}


def _loop_variant(
    params,
    acts,
    l1_coeff,
    steps,
    batch_size,
    lr,
    seed,
    warmup=True,
    init_b_dec=True,
    schedule=True,
    renorm=False,
    first_step=0,
):
    p = {name: t.detach().clone().requires_grad_(True) for name, t in params.items()}
    if init_b_dec:
        with torch.no_grad():
            p["b_dec"].copy_(acts.mean(0))
    opt = torch.optim.Adam(p.values(), lr=lr)
    factor = (lambda s: min(1.0, 5 * (1 - s / steps))) if schedule else (lambda s: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = acts[torch.randint(0, len(acts), (batch_size,), generator=gen)]
        ramp = min(1.0, (step + first_step) / max(1, 0.1 * steps))
        coeff = l1_coeff * ramp if warmup else l1_coeff
        loss = sae_loss(x, p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"], coeff)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if renorm:
            with torch.no_grad():
                p["W_dec"].copy_(normalize_rows(p["W_dec"]))
    return {name: t.detach() for name, t in p.items()}


def _loop_no_warmup(*args):
    return _loop_variant(*args, warmup=False)


def _loop_ramp_from_one(*args):
    return _loop_variant(*args, first_step=1)


def _loop_b_dec_zero(*args):
    return _loop_variant(*args, init_b_dec=False)


def _loop_constant_lr(*args):
    return _loop_variant(*args, schedule=False)


def _loop_renormalise(*args):
    return _loop_variant(*args, renorm=True)


def _training_case(seed: int, d_in: int, d_sae: int, n: int) -> tuple[dict[str, Tensor], Tensor]:
    g = _gen(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    params = {"W_enc": W_dec.T.clone() * 0.5, "b_enc": torch.zeros(d_sae), "W_dec": W_dec, "b_dec": torch.zeros(d_in)}
    codes = torch.rand(n, 2 * d_in, generator=g) * (torch.rand(n, 2 * d_in, generator=g) < 0.2)
    acts = codes @ torch.randn(2 * d_in, d_in, generator=g) + torch.randn(d_in, generator=g)
    return params, acts


@exercise_check(
    reference=_package_train,
    wrong_answers={
        "The L1 coefficient is at full strength from the first step: ramp it up over the first 10% of steps.": (
            _loop_no_warmup
        ),
        "Your b_dec starts where it was given; the trainer starts it at the mean activation.": _loop_b_dec_zero,
        (
            "Your L1 ramp is one step ahead: steps count from 0, so the first step's coefficient is 0 "
            "(step / (steps / 10) with step = 0, 1, ...)."
        ): _loop_ramp_from_one,
        (
            "Your learning rate never decays: keep it for 80% of the steps, then let it fall linearly to 0 "
            "(a LambdaLR stepped after each optimiser step)."
        ): _loop_constant_lr,
        (
            "You renormalise the raw decoder rows after each step. The forward pass already normalises "
            "them, and rescaling the raw rows changes the size of Adam's later steps: leave them alone."
        ): _loop_renormalise,
    },
)
def check_train_sae_loop(fn) -> None:
    """Your `train_sae_loop(...)` must return the weights `sae.train_sae` reaches with the same seed, data and steps."""
    why = "Return a dict of the four trained tensors, like the params you were given."
    params, acts = _training_case(20, d_in=6, d_sae=10, n=300)
    verify(fn, params, acts, 0.05, 30, 16, 1e-2, 0, what="the weights after 30 steps (l1 0.05, batch 16)", why=why)
    params, acts = _training_case(21, d_in=4, d_sae=12, n=50)
    verify(fn, params, acts, 0.3, 25, 1, 3e-2, 7, what="the weights after 25 steps (l1 0.3, batch 1, seed 7)", why=why)


# --- 4.14 resampling dead latents -----------------------------------------------------------


def _package_resample(params, adam_state, x, dead, seed):
    """The package's `resample_dead_latents` with an Adam holding `adam_state`: the reference of 4.14."""
    autoencoder = _sae_from(params)
    opt = torch.optim.Adam(autoencoder.parameters())
    for name in _PARAM_NAMES:
        moments = {k: v.clone() for k, v in adam_state[name].items()}
        opt.state[getattr(autoencoder, name)] = {"step": torch.tensor(10.0), **moments}
    resample_dead_latents(autoencoder, x, dead, torch.Generator().manual_seed(seed), opt)
    new_params = {name: getattr(autoencoder, name).detach().clone() for name in _PARAM_NAMES}
    new_state = {
        name: {k: opt.state[getattr(autoencoder, name)][k].clone() for k in ("exp_avg", "exp_avg_sq")}
        for name in _PARAM_NAMES
    }
    return new_params, new_state


def _resample_variant(params, adam_state, x, dead, seed, reset="dead", worst=False, scale=0.2, from_input=False):
    params = {name: t.clone() for name, t in params.items()}
    adam_state = {name: {k: v.clone() for k, v in s.items()} for name, s in adam_state.items()}
    n = int(dead.sum())
    _, x_hat = sae_forward(x, params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"])
    err = x - x_hat
    weights = err.pow(2).sum(-1)
    if worst:
        idx = weights.topk(min(n, len(x))).indices.repeat(n)[:n]
    else:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.multinomial(weights / weights.sum(), n, replacement=n > len(x), generator=gen)
    directions = normalize_rows(x[idx] if from_input else err[idx])
    mean_norm = params["W_enc"][:, ~dead].norm(dim=0).mean()
    params["W_dec"][dead] = directions
    params["W_enc"][:, dead] = directions.T * mean_norm * scale
    params["b_enc"][dead] = 0.0
    mask = dead if reset == "dead" else torch.ones_like(dead)
    if reset != "none":
        for name in ("W_dec", "b_enc"):
            for v in adam_state[name].values():
                v[mask] = 0.0
        for v in adam_state["W_enc"].values():
            v[:, mask] = 0.0
    return params, adam_state


def _resample_no_reset(*args):
    return _resample_variant(*args, reset="none")


def _resample_reset_all(*args):
    return _resample_variant(*args, reset="all")


def _resample_worst(*args):
    return _resample_variant(*args, worst=True)


def _resample_full_scale(*args):
    return _resample_variant(*args, scale=1.0)


def _resample_from_input(*args):
    return _resample_variant(*args, from_input=True)


def _resample_case(seed: int, d_in: int, d_sae: int, batch: int, n_dead: int):
    g = _gen(seed)
    params = {name: t.clone() for name, t in zip(_PARAM_NAMES, _sae_params(seed, d_in=d_in, d_sae=d_sae))}
    adam_state = {
        name: {"exp_avg": torch.randn(t.shape, generator=g), "exp_avg_sq": torch.rand(t.shape, generator=g) + 0.1}
        for name, t in params.items()
    }
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[torch.randperm(d_sae, generator=g)[:n_dead]] = True
    return params, adam_state, torch.randn(batch, d_in, generator=g) * 2, dead


@exercise_check(
    reference=_package_resample,
    wrong_answers={
        "The resampled latents keep the dead latents' Adam moments: zero exp_avg and exp_avg_sq for them.": (
            _resample_no_reset
        ),
        "You reset the Adam moments of every latent; only the resampled ones start afresh.": _resample_reset_all,
        (
            "You take the inputs with the largest errors; draw them at random, in proportion to the squared "
            "error (torch.multinomial), so that one bad input does not get every dead latent."
        ): _resample_worst,
        "Your new encoder columns are as long as the live ones; start them at a fifth of that.": _resample_full_scale,
        "Your new directions point along the inputs; they point along the inputs' reconstruction errors.": (
            _resample_from_input
        ),
    },
)
def check_resample_dead(fn) -> None:
    """Your `resample_dead(params, adam_state, x, dead, seed)` must match `sae.resample_dead_latents` with its optimiser."""
    why = "Return the pair (params, adam_state), two dicts shaped like the ones you were given."
    verify(fn, *_resample_case(22, d_in=6, d_sae=10, batch=16, n_dead=3), 0, what="3 of 10 latents dead", why=why)
    verify(fn, *_resample_case(23, d_in=5, d_sae=8, batch=2, n_dead=5), 4, what="5 of 8 dead, batch of 2", why=why)


# --- 4.15 AuxK ------------------------------------------------------------------------------


def _auxk_all_latents(pre, W_dec, residual, dead, k_aux):
    return 1 - explained_variance(residual, topk_activation(pre, k_aux) @ W_dec)


def _auxk_plain_mse(pre, W_dec, residual, dead, k_aux):
    if not dead.any():
        return pre.new_zeros(())
    dead_pre = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
    return (topk_activation(dead_pre, min(k_aux, int(dead.sum()))) @ W_dec - residual).pow(2).mean()


def _auxk_uncentred(pre, W_dec, residual, dead, k_aux):
    if not dead.any():
        return pre.new_zeros(())
    dead_pre = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
    e_hat = topk_activation(dead_pre, min(k_aux, int(dead.sum()))) @ W_dec
    return (e_hat - residual).pow(2).sum() / residual.pow(2).sum()


def _auxk_no_relu(pre, W_dec, residual, dead, k_aux):
    if not dead.any():
        return pre.new_zeros(())
    values, idx = torch.where(dead, pre, torch.full_like(pre, -torch.inf)).topk(min(k_aux, int(dead.sum())), dim=-1)
    e_hat = torch.zeros_like(pre).scatter(-1, idx, values) @ W_dec
    return 1 - explained_variance(residual, e_hat)


@exercise_check(
    reference=auxk_loss,
    wrong_answers={
        "Live latents take part in your auxiliary reconstruction; only the dead latents may.": _auxk_all_latents,
        "Your loss is a plain MSE; divide by the residual's squared deviation from its mean.": _auxk_plain_mse,
        (
            "You divide by the residual's squared norm; divide by its squared deviation from its mean over "
            "tokens (its variance), so 1 means no better than the mean residual."
        ): _auxk_uncentred,
        "A negative pre-activation survives in your auxiliary latents: apply a ReLU.": _auxk_no_relu,
    },
)
def check_auxk_loss(fn) -> None:
    """Your `auxk_loss(pre, W_dec, residual, dead, k_aux)` must score the top dead latents' reconstruction of the residual."""
    g = _gen(24)
    why = "Return a scalar tensor: training adds it to the loss and calls .backward()."
    for batch, d_sae, d_in, n_dead, k_aux, shift in ((7, 12, 5, 4, 2, 0.5), (3, 9, 4, 6, 10, -1.0)):
        dead = torch.zeros(d_sae, dtype=torch.bool)
        dead[torch.randperm(d_sae, generator=g)[:n_dead]] = True
        verify(
            fn,
            torch.randn(batch, d_sae, generator=g) + shift,
            normalize_rows(torch.randn(d_sae, d_in, generator=g)),
            torch.randn(batch, d_in, generator=g) + 0.3,
            dead,
            k_aux,
            what=f"the AuxK loss, {n_dead} of {d_sae} dead, k_aux={k_aux}, batch {batch}",
            why=why,
        )
    verify(
        fn,
        torch.randn(4, 6, generator=g),
        normalize_rows(torch.randn(6, 3, generator=g)),
        torch.randn(4, 3, generator=g),
        torch.zeros(6, dtype=torch.bool),
        3,
        what="the AuxK loss when no latent is dead",
        why=why,
    )
