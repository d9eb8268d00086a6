"""Checks for chapter 4: toy models of superposition and sparse autoencoders.

Every check builds its own small seeded inputs (random tensors, a random SAE, or a tiny
random-init GPT-2 built once and cached), so it is fast and independent of trained weights.
References come from `digsite.superposition` and `digsite.sae`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ..sae import SAE, SAEConfig, ce_losses, l0_per_token, normalize_rows, sae_loss, splice_hook
from ..sae import explained_variance as explained_variance_ref
from ..sae import latent_frequencies as latent_frequencies_ref
from ..sae import logit_effects as logit_effects_ref
from ..sae import steering_hook as steering_hook_ref
from ..sae import top_activations as top_activations_ref
from ..sae import topk_activation as topk_activation_ref
from ..superposition import feature_dimensionality as feature_dimensionality_ref
from ..superposition import toy_forward as toy_forward_ref
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2


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
    reference=toy_forward_ref,
    wrong_answers={
        "forgets the ReLU": _toy_no_relu,
        "forgets the bias": _toy_no_bias,
        "adds the bias after the ReLU": _toy_bias_after_relu,
        "mixes the instances together": _toy_instances_mixed,
    },
)
def check_toy_forward(toy_forward) -> None:
    """Your `toy_forward(W, b, features)` must compute ReLU(W^T W x + b) for each instance separately."""
    g = _gen(0)
    W = torch.randn(3, 2, 5, generator=g)
    b = torch.randn(3, 5, generator=g) - 0.5
    x = torch.rand(7, 3, 5, generator=g) * (torch.rand(7, 3, 5, generator=g) < 0.5)
    assert_close(run_learner(toy_forward, W, b, x), toy_forward_ref(W, b, x), what="the toy model's output (batch, inst, feat)")



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
    reference=feature_dimensionality_ref,
    wrong_answers={
        "uses W_i instead of the unit vector W_i_hat in the denominator": _dim_unnormalised,
        "forgets to square the norm in the numerator": _dim_norm_not_squared,
        "normalises W over the wrong dimension": _dim_over_hidden,
    },
)
def check_feature_dimensionality(feature_dimensionality) -> None:
    """Your `feature_dimensionality(W)` must give D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 per instance."""
    g = _gen(1)
    W = torch.randn(4, 3, 6, generator=g) * 2
    assert_close(run_learner(feature_dimensionality, W), feature_dimensionality_ref(W), what="D (inst, feat) on random W")
    pair = torch.tensor([[[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])  # an antipodal pair and a feature alone
    assert_close(run_learner(feature_dimensionality, pair), torch.tensor([[0.5, 0.5, 1.0]]), what="D for an antipodal pair + a dedicated feature")



# --- 4.3 the SAE forward pass ---------------------------------------------------------------


def sae_forward_reference(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> tuple[Tensor, Tensor]:
    """(latents f (..., d_sae), reconstruction (..., d_in)) with unit-norm decoder rows."""
    f = torch.relu((x - b_dec) @ W_enc + b_enc)
    return f, f @ normalize_rows(W_dec) + b_dec


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
    reference=sae_forward_reference,
    wrong_answers={
        "decoder directions not normalised": _fwd_unnormalised,
        "normalises the decoder's columns (over latents) instead of its rows": _fwd_normalise_columns,
        "forgets the ReLU": _fwd_no_relu,
        "forgets to subtract b_dec before encoding": _fwd_no_b_dec_in,
    },
)
def check_sae_forward(sae_forward) -> None:
    """Your `sae_forward(x, W_enc, b_enc, W_dec, b_dec)` must return (f, x_hat) with unit-norm decoder rows."""
    params = _sae_params(2)
    x = torch.randn(2, 5, 6, generator=_gen(3))
    got = run_learner(sae_forward, x, *params)
    if not isinstance(got, tuple) or len(got) != 2:
        raise CheckFailed(f"sae_forward must return a tuple (f, x_hat), got {type(got).__name__}.")
    f, x_hat = sae_forward_reference(x, *params)
    assert_close(got[0], f, what="the latent activations f")
    assert_close(got[1], x_hat, what="the reconstruction x_hat")


# --- 4.4 the loss ---------------------------------------------------------------------------


def sae_loss_reference(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1_coeff: float) -> Tensor:
    """MSE per element + l1_coeff * mean over tokens of the L1 norm of the latent activations."""
    f, x_hat = sae_forward_reference(x, W_enc, b_enc, W_dec, b_dec)
    return sae_loss(x, f, x_hat, l1_coeff)[0]


def _loss_l1_pre(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    pre = (x - b_dec) @ W_enc + b_enc
    f, x_hat = sae_forward_reference(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * pre.abs().sum(-1).mean()


def _loss_l1_recon(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f, x_hat = sae_forward_reference(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * x_hat.abs().sum(-1).mean()


def _loss_l1_weights(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f, x_hat = sae_forward_reference(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * W_enc.abs().sum()


def _loss_l1_mean_over_latents(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f, x_hat = sae_forward_reference(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * f.abs().mean()


@exercise_check(
    reference=sae_loss_reference,
    wrong_answers={
        "L1 on the pre-activations (before the ReLU)": _loss_l1_pre,
        "L1 on the reconstruction": _loss_l1_recon,
        "L1 on the encoder weights": _loss_l1_weights,
        "L1 averaged over latents instead of summed": _loss_l1_mean_over_latents,
    },
)
def check_sae_loss(sae_loss) -> None:
    """Your `sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff)` must be MSE + l1_coeff * mean_tokens sum_latents |f|."""
    params = _sae_params(4)
    x = torch.randn(9, 6, generator=_gen(5))
    for coeff in (0.0, 0.3):
        assert_close(run_learner(sae_loss, x, *params, coeff), sae_loss_reference(x, *params, coeff), what=f"the loss with l1_coeff={coeff}")


# --- 4.5 TopK -------------------------------------------------------------------------------


def _topk_plus_one(pre: Tensor, k: int) -> Tensor:
    return topk_activation_ref(pre, k + 1)


def _topk_minus_one(pre: Tensor, k: int) -> Tensor:
    return topk_activation_ref(pre, k - 1)


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
    reference=topk_activation_ref,
    wrong_answers={
        "keeps k + 1": _topk_plus_one,
        "keeps k - 1": _topk_minus_one,
        "takes the top k over the batch instead of per token": _topk_over_batch,
        "keeps the smallest k": _topk_smallest,
        "keeps negative values (no ReLU)": _topk_no_relu,
    },
)
def check_topk_activation(topk_activation) -> None:
    """Your `topk_activation(pre, k)` must keep each token's k largest (ReLU'd) pre-activations."""
    g = _gen(6)
    pre = torch.randn(4, 3, 12, generator=g)
    for k in (1, 3, 5):
        assert_close(run_learner(topk_activation, pre.clone(), k), topk_activation_ref(pre, k), what=f"TopK with k={k}")
    mostly_negative = torch.randn(5, 12, generator=g) - 2.0
    assert_close(run_learner(topk_activation, mostly_negative.clone(), 4), topk_activation_ref(mostly_negative, 4),
                 what="TopK with k=4 when most pre-activations are negative")



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
    reference=l0_per_token,
    wrong_answers={
        "counts latents active anywhere in the batch": _l0_per_batch,
        "counts all non-zeros without averaging over tokens": _l0_total,
        "averages over latents too (a fraction, not a count)": _l0_fraction,
    },
)
def check_l0(l0) -> None:
    """Your `l0(f)` must count the non-zero latents of each token and average over all tokens."""
    for shape in ((50, 40), (4, 6, 40)):
        f = _sparse_latents(7, shape, 0.1)
        assert_close(run_learner(l0, f), l0_per_token(f), what=f"L0 of latents of shape {shape}")


# --- 4.7 explained variance -----------------------------------------------------------------


def _ev_uncentred(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum()


def _ev_unexplained(x: Tensor, x_hat: Tensor) -> Tensor:
    return (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()


def _ev_centred_over_dims(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - (x - x_hat).pow(2).sum() / (x - x.mean(-1, keepdim=True)).pow(2).sum()


@exercise_check(
    reference=explained_variance_ref,
    wrong_answers={
        "divides by ||x||^2 without subtracting the mean": _ev_uncentred,
        "returns the unexplained fraction": _ev_unexplained,
        "subtracts each token's own mean instead of the mean token": _ev_centred_over_dims,
    },
)
def check_explained_variance(explained_variance) -> None:
    """Your `explained_variance(x, x_hat)` must be 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2."""
    g = _gen(8)
    x = torch.randn(64, 8, generator=g) + 3 * torch.randn(8, generator=g)
    x_hat = x + 0.5 * torch.randn(64, 8, generator=g)
    assert_close(run_learner(explained_variance, x, x_hat), explained_variance_ref(x, x_hat), what="explained variance")



# --- 4.8 latent frequencies -----------------------------------------------------------------


def _freq_per_batch(f: Tensor) -> Tensor:
    return (f > 0).any(0).float()


def _freq_counts(f: Tensor) -> Tensor:
    return (f > 0).float().sum(0)


def _freq_mean_activation(f: Tensor) -> Tensor:
    return f.mean(0)


@exercise_check(
    reference=latent_frequencies_ref,
    wrong_answers={
        "marks a latent 1 if it fired anywhere in the batch": _freq_per_batch,
        "counts instead of a fraction of tokens": _freq_counts,
        "averages the activation values instead of firing": _freq_mean_activation,
    },
)
def check_latent_frequencies(latent_frequencies) -> None:
    """Your `latent_frequencies(f)` must give, per latent, the fraction of tokens on which it fires."""
    f = _sparse_latents(9, (200, 30), 0.05)
    f[:, :3] = 0.0  # three dead latents
    assert_close(run_learner(latent_frequencies, f), latent_frequencies_ref(f), what="firing frequencies (d_sae,)")



# --- 4.9 CE loss recovered ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tiny_model_and_sae():
    """A 2-layer, 32-wide random GPT-2 (hooked) and a random TopK SAE on its layer-1 residual stream."""
    model = seeded_gpt2(vocab_size=40, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                        initializer_range=0.2, bos_token_id=1)
    sae = SAE(SAEConfig(d_in=32, d_sae=64, k=8, hook_name="blocks.1.hook_resid_pre"), seed=0).eval()
    tokens = torch.cat([torch.ones(4, 1, dtype=torch.long), torch.randint(3, 40, (4, 15), generator=_gen(10))], dim=1)
    return model, sae, tokens


def ce_loss_recovered_reference(model, sae, tokens: Tensor, hook_name: str) -> float:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean), BOS position left alone in both interventions."""
    clean, spliced, zero = ce_losses(model, sae, tokens, hook_name)
    return (zero - spliced) / (zero - clean)


def _ce_no_baseline(model, sae, tokens, hook_name):
    clean, spliced, _ = ce_losses(model, sae, tokens, hook_name)
    return clean / spliced


def _ce_increase(model, sae, tokens, hook_name):
    clean, spliced, _ = ce_losses(model, sae, tokens, hook_name)
    return 1 - (spliced - clean) / clean


def _ce_splice_bos_too(model, sae, tokens, hook_name):
    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        spliced = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice_hook(sae, skip_bos=False))], return_type="loss").item()
        zero = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, lambda x, hook: torch.zeros_like(x))], return_type="loss").item()
    return (zero - spliced) / (zero - clean)


@exercise_check(
    reference=ce_loss_recovered_reference,
    wrong_answers={
        "no zero-ablation baseline (CE_clean / CE_sae)": _ce_no_baseline,
        "relative CE increase instead of the zero-ablation baseline": _ce_increase,
        "replaces the BOS position too": _ce_splice_bos_too,
    },
)
def check_ce_loss_recovered(ce_loss_recovered) -> None:
    """Your `ce_loss_recovered(model, sae, tokens, hook_name)` must use zero-ablation as the floor, BOS kept."""
    model, sae, tokens = _tiny_model_and_sae()
    hook_name = sae.cfg.hook_name
    got = run_learner(ce_loss_recovered, model, sae, tokens, hook_name)
    if any(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.model.modules()):
        raise CheckFailed("Hooks were left on the model: use `with model.hooks(...)` or `run_with_hooks`.")
    assert_close(float(got) if isinstance(got, Tensor) else got, ce_loss_recovered_reference(model, sae, tokens, hook_name),
                 what="CE loss recovered on a tiny random model", atol=1e-3, rtol=1e-3)


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
    reference=top_activations_ref,
    wrong_answers={
        "unravels the flat index with the wrong dimension": _top_swapped,
        "returns the smallest activations": _top_bottom,
        "keeps only the best position of each sequence": _top_one_per_sequence,
    },
)
def check_top_activations(top_activations) -> None:
    """Your `top_activations(latent_acts, k)` must return (seq, pos, values) of the k largest activations."""
    g = _gen(11)
    acts = torch.relu(torch.randn(6, 9, generator=g))
    acts[2, 3], acts[2, 7], acts[4, 0] = 9.0, 8.0, 7.0  # two of the top three share a sequence
    got = run_learner(top_activations, acts, 5)
    if not isinstance(got, tuple) or len(got) != 3:
        raise CheckFailed("top_activations must return a tuple (seq indices, pos indices, values).")
    expected = top_activations_ref(acts, 5)
    for label, g_, e in zip(("sequence indices", "position indices", "values"), got, expected):
        assert_close(g_, e, what=f"the {label}")



# --- 4.11 logit effects ---------------------------------------------------------------------


def _effects_no_ln(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return (direction - direction.mean()) @ W_U


def _effects_no_centre(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return (direction * ln_weight) @ W_U


def _effects_raw(direction: Tensor, W_U: Tensor, ln_weight: Tensor) -> Tensor:
    return direction @ W_U


@exercise_check(
    reference=logit_effects_ref,
    wrong_answers={
        "forgets the final LayerNorm's weight": _effects_no_ln,
        "forgets that LayerNorm centres the vector": _effects_no_centre,
        "multiplies by W_U directly": _effects_raw,
    },
)
def check_logit_effects(logit_effects) -> None:
    """Your `logit_effects(direction, W_U, ln_weight)` must centre, scale by the LN weight, then unembed."""
    g = _gen(12)
    direction = torch.randn(8, generator=g) + 1.0
    W_U = torch.randn(8, 20, generator=g)
    ln_weight = torch.rand(8, generator=g) * 2 + 0.2
    assert_close(run_learner(logit_effects, direction, W_U, ln_weight), logit_effects_ref(direction, W_U, ln_weight),
                 what="the logit effect of a direction (d_vocab,)")



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
    reference=steering_hook_ref,
    wrong_answers={
        "adds the direction without normalising it": _steer_unnormalised,
        "steers only the last position": _steer_last_position,
        "replaces the activation instead of adding to it": _steer_replace,
    },
)
def check_steering_hook(steering_hook) -> None:
    """Your `steering_hook(direction, alpha)` must return a hook adding alpha * unit(direction) at every position."""
    g = _gen(13)
    direction = torch.randn(8, generator=g) * 3
    x = torch.randn(2, 5, 8, generator=g)
    hook = run_learner(steering_hook, direction, 4.0)
    if not callable(hook):
        raise CheckFailed("steering_hook must return a function hook(activation, hook) -> new activation.")
    got = run_learner(hook, x.clone(), None)
    assert_close(got, steering_hook_ref(direction, 4.0)(x.clone(), None), what="the steered activation (batch, pos, d)")

