# %% [markdown]
# # Chapter 4 — Superposition and sparse autoencoders
#
# Neural networks use their neurons to represent way more concepts than they have neurons.
# They can afford it because most concepts are **sparse** — absent from almost every input —
# so a few can share a direction and rarely collide. That is **superposition**, and it is why a
# single neuron or residual dimension so often means nothing on its own. In this chapter you
# watch superposition appear in a tiny model you train in seconds, then build the tool that
# unmixes the paint: a **sparse autoencoder** (SAE), trained on the toy-language model's
# residual stream. You implement the metrics practitioners report, read what the SAE's latents
# mean with small dashboards, check them against the ground truth of our own data generator,
# and steer the model with one latent.
#
# **Goals**
# - Write a toy model of superposition, train many at once, and see features pack into
#   pentagons as they get sparser; find the phase change.
# - Write an SAE (ReLU + L1, unit-norm decoder), then a TopK SAE, and train both in seconds.
# - Implement and interpret L0, MSE, explained variance, dead / dense latents and CE loss
#   recovered (with zero-ablation as the floor).
# - Build a feature dashboard: top-activating contexts, activation histogram, promoted and
#   suppressed tokens; page through latents with a widget.
# - Label latents against the generator's categories and count how many match.
# - Steer generation by adding a latent's decoder direction.
#
# **Prerequisites:** chapter 1 (hooks, `run_with_cache`, `run_with_hooks`); PyTorch training
# loops; `einsum`.
#
# **Time:** about 2½ hours.
#
# **Readings**
# - Elhage et al., [*Toy Models of Superposition*](https://transformer-circuits.pub/2022/toy_model/index.html) (2022) —
#   sections 1–4 (the model, the phase change, the geometry).
# - Bricken et al., [*Towards Monosemanticity*](https://transformer-circuits.pub/2023/monosemantic-features/index.html) (2023) —
#   SAEs on a 1-layer model, dashboards, dead latents and resampling, feature splitting.
# - Gao et al., [*Scaling and evaluating sparse autoencoders*](https://arxiv.org/abs/2406.04093) (2024) —
#   TopK SAEs and how to evaluate them.
# - Templeton et al., [*Scaling Monosemanticity*](https://transformer-circuits.pub/2024/scaling-monosemanticity/index.html) (2024) —
#   what SAEs find in a production model, and steering with features.

# %%
import time

import torch

from digsite import load_model, plot, sae, superposition, widgets
from digsite.checks import ch04
from digsite.claims import claim
from digsite.notebook import online, setup
from digsite.organisms.data import VEHICLES, ioi_prompts

device = setup(seed=0)
print("Running on", device)

# %% [markdown]
# # Part 1 — Toy models of superposition
#
# Elhage et al.'s toy model has `n` features, each present with probability `p` (its
# **density**; the **sparsity** is 1 − p) and, when present, uniform in [0, 1]. It must push
# them through `m < n` hidden dimensions and read them back:
#
# $$h = W x, \qquad x' = \mathrm{ReLU}(W^\top h + b),$$
#
# with `W` of shape (m, n) — column `W_i` is where feature `i` lives in the hidden space — and
# a loss that weights each feature's squared error by its **importance**. With only a linear
# read-out, the best the model can do is keep the `m` most important features and drop the rest
# (that is PCA). The ReLU changes the deal: small interference from other features can be
# clipped away, so when features are rarely active together, packing more than `m` of them is
# worth it.
#
# We train many small models at once — one per setting of sparsity or importance — as one
# batched model with an *instance* dimension: `W` is (inst, m, n), `b` is (inst, n) and the
# features are (batch, inst, n).
#
# ## Exercise 4.1 — the toy model's forward pass
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def toy_forward(W: torch.Tensor, b: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """ReLU(W^T W x + b), for every instance separately.

    W: (inst, n_hidden, n_features), b: (inst, n_features), features: (batch, inst, n_features).
    Returns (batch, inst, n_features).
    """
    # BEGIN SOLUTION
    hidden = torch.einsum("ihf,bif->bih", W, features)
    out = torch.einsum("ihf,bih->bif", W, hidden)
    return torch.relu(out + b)
    # END SOLUTION


ch04.check_toy_forward(toy_forward)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Two `einsum`s: `"ihf,bif->bih"` takes features to hidden, `"ihf,bih->bif"` brings them back
# with the same `W` (that is the transpose). Add `b`, then the ReLU.
# </details>
#
# `superposition.ToyModel` runs exactly this forward pass. Let us train eight instances of
# five features in two dimensions, with importances 1, 0.9, 0.81, … and densities from 1
# (every feature always on) down to 0.01. (The toy models and SAEs in this chapter train on one
# CPU thread: at this size more threads barely help, and on a busy machine they hurt.)

# %%
densities = torch.tensor([1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01])
importance = 0.9 ** torch.arange(5)
toy = superposition.ToyModel(
    n_instances=8, n_features=5, n_hidden=2, feature_probability=densities[:, None], importance=importance, seed=0
)
t0 = time.time()
superposition.train_toy_model(toy, steps=2000, batch_size=1024, lr=1e-2, seed=0)
print(f"trained 8 toy models in {time.time() - t0:.1f} s")
superposition.plot_features_2d(toy.W.detach(), importance, titles=[f"p = {p:g}" for p in densities.tolist()])

# %% [markdown]
# Each arrow is one feature's column `W_i`, darker for more important features. When every
# feature is always present (p = 1) the model does what PCA would: two orthogonal arrows for
# the two most important features, the rest left at zero. As the features get sparser, more
# arrows appear — first antipodal pairs, then, at the sparsest settings, all five in a
# **pentagon**: five features in two dimensions.
#
# ## Exercise 4.2 — how many dimensions does a feature get?
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪ · about 10 minutes
#
# Elhage et al. measure superposition per feature with its **dimensionality**
#
# $$D_i = \frac{\lVert W_i \rVert^2}{\sum_j (\hat W_i \cdot W_j)^2},$$
#
# where $\hat W_i$ is the unit vector along $W_i$. A feature with a dimension to itself has
# D = 1; two features sharing one dimension antipodally have 1/2 each; a pentagon gives 2/5;
# an ignored feature 0.


# %%
def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 for every feature of every instance.

    W: (inst, n_hidden, n_features), feature i is the column W[:, :, i]. Returns (inst, n_features).
    """
    # BEGIN SOLUTION
    norms = W.norm(dim=1, keepdim=True)  # (inst, 1, feat)
    W_hat = W / norms.clamp_min(1e-8)
    overlaps = torch.einsum("ihf,ihg->ifg", W_hat, W)  # (inst, i, j): W_i_hat . W_j
    return norms.squeeze(1) ** 2 / overlaps.pow(2).sum(-1).clamp_min(1e-12)
    # END SOLUTION


ch04.check_feature_dimensionality(feature_dimensionality)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Norms over the hidden dimension (`dim=1`), `W_hat = W / norms`, then all the dot products at
# once with `einsum("ihf,ihg->ifg", W_hat, W)`. Guard the division for ignored features
# (norm 0) with `clamp_min`.
# </details>

# %%
D = feature_dimensionality(toy.W.detach())
print("dimensions per feature (rows: densities, columns: features by importance)")
for p, row in zip(densities.tolist(), D):
    print(f"p = {p:<6g}", " ".join(f"{d:5.2f}" for d in row.tolist()), f"  total {row.sum():.2f}")
claim("ch04.max_total_D", D.sum(1).max())
claim("ch04.dense_D", D[0, :2].min())
claim("ch04.dense_D", D[0, :2].max())
claim("ch04.pentagon_D", D[-1].min())
claim("ch04.pentagon_D", D[-1].max())

# %% [markdown]
# The totals never exceed the two dimensions available (the largest is {{claim:ch04.max_total_D=2.00}}); what changes
# is how many features share them: two features with D = {{claim:ch04.dense_D=0.9–1.0}} when dense, five with D of
# {{claim:ch04.pentagon_D=0.35–0.45}} in the pentagon.
#
# ### The phase change
#
# Take the smallest case: **two** features and **one** hidden dimension. Feature 0 has
# importance 1, feature 1 a relative importance r. Depending on r and the density, the model
# keeps feature 0 only, feature 1 only, or both — antipodally, in superposition. Elhage et al.
# found sharp boundaries between these regimes: a phase diagram. One instance per cell of a
# 10 × 10 grid, three restarts each (a run can stop in a local minimum; we keep the best),
# all trained at once:

# %%
phase_densities = torch.logspace(0, -1.5, 10)
relative_importances = torch.logspace(-1, 1, 10)
phases = superposition.phase_diagram(phase_densities, relative_importances, steps=1500, seed=0)
plot.imshow(
    phases.float(),
    x=[f"{d:.2g}" for d in phase_densities.tolist()],
    y=[f"{r:.2g}" for r in relative_importances.tolist()],
    diverging=False,
    title="0: only feature 0 · 1: only feature 1 · 2: both, in superposition · 3: neither",
    xlabel="feature density p (sparser →)",
    ylabel="relative importance of feature 1",
)

# %% [markdown]
# Dense features (left): whichever feature is more important gets the dimension, the other
# is dropped. Sparse features (right): both are kept, antipodally, even when one matters
# ten times less. The boundary is sharp — a phase change.
#
# # Part 2 — Sparse autoencoders on the toy-language model
#
# If a model stores more features than it has dimensions, its activations are sums of a few
# active feature directions out of many. A **sparse autoencoder** tries to recover them: it
# maps an activation x (d_in) to many more **latents** f (d_sae ≫ d_in), most of them zero, and
# reconstructs x from them:
#
# $$f = \mathrm{ReLU}\big(W_{enc}^\top (x - b_{dec}) + b_{enc}\big), \qquad \hat x = f\, W_{dec} + b_{dec}.$$
#
# Each row of `W_dec` (d_sae, d_in) is one latent's **decoder direction** (in the
# x̂ = W_d f + b_d convention of the papers, the columns of W_d). We keep every one at unit norm:
# otherwise the L1 penalty below could be dodged by shrinking f and growing the direction.
#
# **Which activations?** We use the toy-language model's **residual stream before layer 2**
# (`blocks.2.hook_resid_pre`), in the middle of its four layers. The residual stream is the
# model's shared bus: what the first two layers wrote (token identity, the previous token,
# which names were repeated) is all there, and everything the last two layers read comes from
# it. It is also small (d_model = 128, against 512 MLP neurons), so a 4× dictionary trains
# in seconds and ships in half a megabyte, and a decoder direction lives in the same space as the
# unembedding, which makes "which tokens does this latent promote?" a matrix product.
#
# We drop the BOS position: its activation is huge and identical in every sequence, a constant
# the SAE would waste latents on.

# %%
model = load_model("toylang", device="cpu")
HOOK = "blocks.2.hook_resid_pre"
train_tokens = sae.toylang_tokens(model, 1200, seed=1_000_000)  # documents it never saw, 64 tokens each
eval_tokens = sae.toylang_tokens(model, 200, seed=3_000_000)
acts = sae.collect_activations(model, train_tokens, HOOK)  # (tokens, d_model), BOS dropped
eval_acts = sae.collect_activations(model, eval_tokens, HOOK)
print(model)
print(f"training activations: {tuple(acts.shape)}, held-out: {tuple(eval_acts.shape)}")
print(f"mean squared norm per token: {acts.pow(2).sum(-1).mean():.1f}")
claim("ch04.resid_norm", eval_acts.norm(dim=-1).mean())

# %% [markdown]
# ## Exercise 4.3 — the SAE's forward pass
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Normalise the decoder rows inside the forward pass (divide each row by its norm), so the
# decoder you use is always unit-norm whatever the optimiser does to the raw parameter.


# %%
def sae_forward(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents and reconstruction of a ReLU SAE with unit-norm decoder rows.

    x: (..., d_in), W_enc: (d_in, d_sae), b_enc: (d_sae,), W_dec: (d_sae, d_in) (rows NOT yet
    unit-norm), b_dec: (d_in,). Returns (f (..., d_sae), x_hat (..., d_in)).
    """
    # BEGIN SOLUTION
    f = torch.relu((x - b_dec) @ W_enc + b_enc)
    W_dec_unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return f, f @ W_dec_unit + b_dec
    # END SOLUTION


ch04.check_sae_forward(sae_forward)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Each latent's direction is a row of `W_dec`, so its norm is over the last dimension:
# `W_dec.norm(dim=-1, keepdim=True)`. Subtract `b_dec` from x before the encoder.
# </details>
#
# ## Exercise 4.4 — the loss: reconstruction plus an L1 penalty
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# The loss has two terms: the mean squared error per element, and `l1_coeff` times the L1
# norm of the **latent activations f** (summed over latents, averaged over tokens). The L1 is
# a stand-in for what we want, the number of active latents (L0), which has no gradient.
# Not on the pre-activations (negative values are already zero after the ReLU), not on the
# reconstruction, not on the weights.


# %%
def sae_loss(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor,
    l1_coeff: float,
) -> torch.Tensor:
    """mean((x_hat - x)^2) + l1_coeff * mean over tokens of sum over latents |f|. x: (batch, d_in) -> scalar."""
    # BEGIN SOLUTION
    f, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
    return (x_hat - x).pow(2).mean() + l1_coeff * f.abs().sum(-1).mean()
    # END SOLUTION


ch04.check_sae_loss(sae_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Call your `sae_forward`, then `(x_hat - x).pow(2).mean()` and `f.abs().sum(-1).mean()`.
# </details>
#
# `sae.SAE` implements the same forward pass and loss, and `sae.train_sae` is a plain Adam
# loop with a progress bar (read it: `sae.train_sae??`). It starts `b_dec` at the mean
# activation and warms the L1 coefficient up over the first 10% of steps. Let us train a
# 256-latent ReLU SAE (2× the residual width).

# %%
torch.manual_seed(0)
l1_sae = sae.SAE(sae.SAEConfig(d_in=128, d_sae=256, l1_coeff=0.015, model_name="toylang", hook_name=HOOK), seed=0)
t0 = time.time()
l1_history = sae.train_sae(l1_sae, acts, steps=800, batch_size=1024, lr=2e-3, seed=0)
print(f"trained in {time.time() - t0:.0f} s")
claim("ch04.l1_l0_start", max(l1_history["l0"][:100]))
claim("ch04.l1_l0_end", l1_history["l0"][-1])
plot.line(
    {"MSE": torch.tensor(l1_history["mse"]), "L0 / 100": torch.tensor(l1_history["l0"]) / 100},
    title="ReLU + L1 SAE training",
    xlabel="step",
    log_y=True,
)

# %% [markdown]
# The reconstruction error drops at once. As the L1 penalty warms up (the first 80 steps), L0 —
# the number of active latents per token — falls from {{claim:ch04.l1_l0_start=128±20}} to about {{claim:ch04.l1_l0_end=12±3}}, and the
# MSE pays for it for a while before improving again. The L1 coefficient is the one
# knob that trades reconstruction for sparsity; try 0.003 and 0.05.
#
# ## Exercise 4.5 — TopK
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# The L1 penalty has a flaw: it also shrinks the activations of the latents that *should*
# fire. Gao et al. (2024) drop it and enforce sparsity directly: keep each token's `k` largest
# pre-activations and zero the rest. L0 is then k by construction, and there is nothing to tune
# but k.


# %%
def topk_activation(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each token's k largest pre-activations (after a ReLU), zero the others.

    pre: (..., d_sae) -> (..., d_sae) with at most k non-zero entries per token.
    """
    # BEGIN SOLUTION
    values, indices = torch.relu(pre).topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)
    # END SOLUTION


ch04.check_topk_activation(topk_activation)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `torch.topk(..., dim=-1)` gives values and indices per token; `torch.zeros_like(pre).scatter(-1,
# indices, values)` puts them back. Apply the ReLU first so a negative pre-activation never
# survives.
# </details>
#
# A TopK SAE (k = 16) with the same dictionary size. With `resample_every`, latents that have
# not fired for that many steps are re-initialised towards inputs the SAE reconstructs badly
# (more on that below).

# %%
topk_sae = sae.SAE(sae.SAEConfig(d_in=128, d_sae=256, k=16, model_name="toylang", hook_name=HOOK), seed=0)
t0 = time.time()
topk_history = sae.train_sae(topk_sae, acts, steps=800, batch_size=1024, lr=2e-3, seed=0, resample_every=200)
print(f"trained in {time.time() - t0:.0f} s; latents resampled at each check: {topk_history['resampled']}")
claim("ch04.topk_resampled", sum(topk_history["resampled"]))
plot.line(
    {"ReLU + L1": torch.tensor(l1_history["mse"]), "TopK": torch.tensor(topk_history["mse"])},
    title="reconstruction MSE while training",
    xlabel="step",
    log_y=True,
)

# %% [markdown]
# # Part 3 — Is it any good? The metrics practitioners report
#
# An SAE trades two things: **sparsity** (few latents per token, so each token has a short
# explanation) and **fidelity** (the reconstruction is close, and the model still works when we
# swap it in). No single number captures it; these five are what papers and SAELens report.
#
# ## Exercise 4.6 — L0, per token
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes
#
# L0 is the number of non-zero latents **per token**, averaged over tokens. (Not the number of
# latents that fired somewhere in the batch: that grows with the batch and says nothing about
# how short each token's explanation is.)


# %%
def l0(f: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of the number of non-zero latents. f: (..., d_sae) -> scalar tensor."""
    # BEGIN SOLUTION
    return (f != 0).float().sum(-1).mean()
    # END SOLUTION


ch04.check_l0(l0)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# A latent is active on a token when its value is not zero. Count the active latents of each
# token, then average the counts over tokens.
# </details>
# <details><summary>Hint 2</summary>
#
# `(f != 0)` is a boolean tensor of f's shape; `.float().sum(-1)` counts per token (any number
# of leading batch or position axes), and `.mean()` averages all of them.
# </details>
#
# A TopK SAE should give exactly k, whatever the batch; a ReLU SAE any value up to d_sae.
#
# ## Exercise 4.7 — explained variance
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes
#
# The MSE alone is hard to read: is 0.05 good? Compare it with the variance of the
# activations: the fraction of variance explained is 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², with x̄ the
# mean activation over tokens. 1 is perfect; 0 is no better than always predicting x̄.


# %%
def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over all tokens. x, x_hat: (tokens, d_in) -> scalar."""
    # BEGIN SOLUTION
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0, keepdim=True)).pow(2).sum()
    return 1 - resid / total
    # END SOLUTION


ch04.check_explained_variance(explained_variance)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Two sums of squares over *all* tokens and dimensions: the reconstruction error, and the
# spread of x around its own mean. Their ratio is the fraction left unexplained.
# </details>
# <details><summary>Hint 2</summary>
#
# The mean is over tokens only, one mean per dimension: `x.mean(0, keepdim=True)` (shape
# `(1, d_in)`), not the mean of all numbers in x. Then
# `1 - (x - x_hat).pow(2).sum() / (x - x_mean).pow(2).sum()`.
# </details>
#
# Reconstructing every token as the mean should give 0, and a perfect reconstruction 1.
#
# ## Exercise 4.8 — dead and dense latents
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes
#
# A latent's **firing frequency** is the fraction of tokens on which it is non-zero. A latent
# that never fires is **dead**: wasted capacity. One that fires on a large fraction of tokens
# (here: more than 10%) is **dense**, and rarely interpretable. Both should be few.


# %%
def latent_frequencies(f: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens on which each latent fires. f: (tokens, d_sae) -> (d_sae,)."""
    # BEGIN SOLUTION
    return (f > 0).float().mean(0)
    # END SOLUTION


ch04.check_latent_frequencies(latent_frequencies)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# For each latent, over the token axis: on what fraction of the tokens is it positive?
# </details>
# <details><summary>Hint 2</summary>
#
# `(f > 0).float()` is 1 where a latent fires; `.mean(0)` averages over tokens and leaves one
# number per latent, shape `(d_sae,)`. Dead latents are `freq == 0`, dense ones `freq > 0.1`.
# </details>
#
# ## Exercise 4.9 — CE loss recovered
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# The real test: splice the SAE's reconstruction into the forward pass in place of the
# activation and see how much worse the model predicts the next token. A raw loss increase is
# hard to judge, so we compare it with a floor — **zero-ablating** the activation, the usual
# convention (SAELens reports it):
#
# $$\text{CE recovered} = \frac{CE_{\text{zero}} - CE_{\text{SAE}}}{CE_{\text{zero}} - CE_{\text{clean}}}.$$
#
# 1 means the SAE costs nothing; 0 means it is as bad as deleting the activation. Deleting the
# residual stream is a very low floor, though: almost any reconstruction beats it. Below we
# also show the score against another common floor, **mean-ablation** (every token's activation
# replaced by the average activation), and the raw losses, so you can judge the floor itself. Leave the
# BOS position alone in both interventions (the SAE never saw it). Use `model(tokens,
# return_type="loss")` for the mean next-token loss, and `model.hooks(fwd_hooks=...)` or
# `model.run_with_hooks` to swap the activation.


# %%
def ce_loss_recovered(model, autoencoder: torch.nn.Module, tokens: torch.Tensor, hook_name: str) -> float:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean) with the activation at hook_name replaced at every position but BOS.

    tokens: (batch, pos), no padding. autoencoder (an `sae.SAE`, say): autoencoder(x) returns
    (latents, reconstruction) for x (..., d_in).
    """

    # BEGIN SOLUTION
    def splice(x: torch.Tensor, hook) -> torch.Tensor:
        return torch.cat([x[:, :1], autoencoder(x[:, 1:])[1]], dim=1)

    def zero(x: torch.Tensor, hook) -> torch.Tensor:
        return torch.cat([x[:, :1], torch.zeros_like(x[:, 1:])], dim=1)

    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        spliced = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice)], return_type="loss").item()
        zeroed = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero)], return_type="loss").item()
    return (zeroed - spliced) / (zeroed - clean)
    # END SOLUTION


ch04.check_ce_loss_recovered(ce_loss_recovered)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Three forward passes. A hook returns the replacement: `torch.cat([x[:, :1], new[:, 1:]], dim=1)`
# keeps BOS. For the zero ablation, `torch.zeros_like`.
# </details>
#
# Now the scorecard of both SAEs, and of the **shipped** SAE (`sae.load_sae("toylang")`: 512
# latents, TopK with k = 24, trained longer on more text by `python -m digsite.organisms train sae-toylang`), all
# on held-out documents.

# %%
shipped = sae.load_sae("toylang")
card = sae.sae_card("toylang")
print("shipped SAE:", card["config"], "\ntrained with:", card["command"])
clean, spliced, zeroed = sae.ce_losses(model, shipped, eval_tokens, HOOK)
mean_act = eval_acts.mean(0)


def mean_ablate(x: torch.Tensor, hook) -> torch.Tensor:
    """Every token's activation but BOS's replaced by the mean activation over the held-out tokens."""
    return torch.cat([x[:, :1], mean_act.expand_as(x[:, 1:])], dim=1)


with torch.no_grad():
    mean_ablated = model.run_with_hooks(eval_tokens, fwd_hooks=[(HOOK, mean_ablate)], return_type="loss").item()
rows = {}
for name, s in [("ReLU + L1, 256", l1_sae), ("TopK k=16, 256", topk_sae), ("shipped TopK k=24, 512", shipped)]:
    with torch.no_grad():
        f, x_hat = s(eval_acts)
        freq = latent_frequencies(f)
        rows[name] = {
            "L0": l0(f).item(),
            "MSE": (x_hat - eval_acts).pow(2).mean().item(),
            "expl. var.": explained_variance(eval_acts, x_hat).item(),
            "dead": (freq == 0).float().mean().item(),
            "dense (>10%)": (freq > 0.1).float().mean().item(),
            "CE recovered": ce_loss_recovered(model, s, eval_tokens, HOOK),
        }
        ce_sae = zeroed - rows[name]["CE recovered"] * (zeroed - clean)  # the SAE-spliced loss
        rows[name]["(mean floor)"] = (mean_ablated - ce_sae) / (mean_ablated - clean)
print(f"{'':26}" + "".join(f"{k:>13}" for k in next(iter(rows.values()))))
for name, r in rows.items():
    print(f"{name:26}" + "".join(f"{v:13.3f}" for v in r.values()))
print(
    f"\nshipped SAE, CE: clean {clean:.3f}, SAE spliced {spliced:.3f}, mean-ablated {mean_ablated:.3f}, zero-ablated {zeroed:.3f}"
)
l1_row, topk_row, shipped_row = rows.values()
claim("ch04.l1_l0", l1_row["L0"])
claim("ch04.l1_ev", l1_row["expl. var."])
claim("ch04.topk_ev", topk_row["expl. var."])
claim("ch04.l1_ce", l1_row["CE recovered"])
claim("ch04.topk_ce", topk_row["CE recovered"])
claim("ch04.l1_dense", 100 * l1_row["dense (>10%)"])
claim("ch04.topk_dense", 100 * topk_row["dense (>10%)"])
claim("ch04.shipped_ev", shipped_row["expl. var."])
claim("ch04.shipped_dead", 100 * shipped_row["dead"])
claim("ch04.shipped_ce", shipped_row["CE recovered"])
claim("ch04.shipped_ce_mean", shipped_row["(mean floor)"])
claim("ch04.ce_clean", clean)
claim("ch04.ce_mean", mean_ablated)
claim("ch04.ce_zero", zeroed)
claim("ch04.ce_clean_again", clean)
claim("ch04.ce_sae", spliced)

# %% [markdown]
# Read the table as a trade-off, the way a practitioner would. The ReLU + L1 SAE uses fewer
# latents per token (L0 {{claim:ch04.l1_l0=12±2}} against 16) but explains less of the variance ({{claim:ch04.l1_ev=0.90±0.03}} against
# {{claim:ch04.topk_ev=0.95±0.02}}) and recovers less of the loss ({{claim:ch04.l1_ce=0.95±0.03}} against {{claim:ch04.topk_ce=0.98±0.02}}) — partly because the L1
# penalty shrinks every activation it keeps, which TopK does not. The TopK SAE pays with more
# dense latents ({{claim:ch04.topk_dense=17%±3%}} of them against {{claim:ch04.l1_dense=3%±1%}}). The shipped SAE, with twice the dictionary,
# k = 24 and more training, meets the targets this chapter promised: explained variance
# {{claim:ch04.shipped_ev=0.985}} (target ≥ 0.85) at L0 24 (≤ 32), {{claim:ch04.shipped_dead=3%±1%}} dead latents (≤ 10%), and {{claim:ch04.shipped_ce=0.99}} of
# the CE loss recovered (≥ 0.85; a test in `tests/test_sae.py` holds it to the targets).
#
# Now look at the last column and the raw losses. You might expect the mean activation to be a
# *higher* floor than zero — it keeps what all tokens share. Here it is not: mean-ablating the
# residual stream takes the loss from {{claim:ch04.ce_clean=1.50±0.05}} to {{claim:ch04.ce_mean=7.0±0.3}}, even worse than zero-ablating ({{claim:ch04.ce_zero=6.2±0.3}}; a zeroed
# stream leaves the LayerNorms nothing to amplify, while the mean is a confident, wrong token).
# Against that floor the shipped SAE recovers {{claim:ch04.shipped_ce_mean=0.994}}. Both floors are so far below the
# model that "recovered" is near 1 for any decent SAE; the number that discriminates is the
# loss increase itself, from {{claim:ch04.ce_clean_again=1.50±0.05}} to {{claim:ch04.ce_sae=1.54±0.05}} here. Report the raw losses, and which floor you used.
#
# The histogram of log firing frequencies is the first plot to look at after training: a
# spike at the far left is dead latents, a bump at the right is dense ones.

# %%
with torch.no_grad():
    shipped_latents = shipped(eval_acts)[0]  # (tokens, d_sae)
log_freq = latent_frequencies(shipped_latents).clamp_min(1e-6).log10()
plot.histogram(
    log_freq,
    nbins=50,
    title="shipped SAE: log10 firing frequency of each latent",
    xlabel="log10(fraction of tokens)",
    ylabel="latents",
).update_layout(height=300)

# %% [markdown]
# ### Dead latents, and how to revive them
#
# Latents die early in training: the encoder direction points somewhere no activation goes,
# the latent never fires, gets no gradient, and stays dead. Two standard cures:
# - **Resampling** (Bricken et al. 2023): every few hundred steps, re-initialise dead latents
#   towards inputs the SAE currently reconstructs worst. `sae.resample_dead_latents` does a
#   simple version; `train_sae(..., resample_every=...)` calls it during the first three
#   quarters of training (none in the last quarter, so the revived latents can settle). One
#   difference from Bricken et al.: they also reset the Adam optimiser's running statistics for
#   the resampled latents, so old momentum does not push the new directions around;
#   `train_sae` does not, and a resampled latent inherits the moments of the dead one. The
#   TopK SAE above had it switched on, but with 256 latents on our small language no latent
#   went dead (the counts printed with its training add up to {{claim:ch04.topk_resampled=0}}). Dead latents come with
#   bigger dictionaries and smaller k. Try it: train a 1,024-latent TopK SAE with k = 8, with and
#   without `resample_every`, and compare the dead fractions. (For TopK, a resampled latent's
#   encoder row must be strong enough to make it into the top k; `resample_dead_latents` sees to
#   that.)
# - **An auxiliary loss** (Gao et al. 2024, "AuxK"): let the top dead latents reconstruct the
#   residual error, so they get gradient again.
#
# ### Feature splitting
#
# Grow the dictionary and a latent often **splits** into several finer ones. To see it, change
# *only* the dictionary size: train a 128-latent TopK SAE exactly like the 256-latent one above
# (same k = 16, same activations, same steps, learning rate, seed and resampling) and, for each
# latent of the small SAE, find the decoder directions of the big one most similar to it.
# (Comparing with the shipped SAE instead would change k, the data and the training length as
# well, and any of those could move the latents.)

# %%
small_sae = sae.SAE(sae.SAEConfig(d_in=128, d_sae=128, k=16, model_name="toylang", hook_name=HOOK), seed=0)
sae.train_sae(small_sae, acts, steps=800, batch_size=1024, lr=2e-3, seed=0, resample_every=200, progress=False)
cos = small_sae.W_dec_normalized.detach() @ topk_sae.W_dec_normalized.detach().T  # (128, 256)
best = cos.max(dim=1).values
print(f"median best match of a 128-SAE latent in the 256-SAE: cosine {best.median():.2f}")
alive = latent_frequencies(small_sae(eval_acts)[0].detach()) > 0.001
split = ((cos > 0.6).sum(1) >= 2) & alive
candidate = int(((cos > 0.6).sum(1) * alive).argmax())
print(f"{int(split.sum())} live latents of the 128-SAE have two or more 256-SAE latents with cosine > 0.6")
print(
    f"small-SAE latent {candidate} has {int((cos[candidate] > 0.6).sum())} big-SAE latents with cosine > 0.6:",
    [(int(i), round(float(cos[candidate, i]), 2)) for i in cos[candidate].topk(4).indices],
)
claim("ch04.split_median_cos", best.median())
claim("ch04.split_count", split.sum())

# %% [markdown]
# The two dictionaries overlap only in part: the median latent of the small SAE finds a
# big-SAE direction at cosine {{claim:ch04.split_median_cos=0.61±0.05}}, and {{claim:ch04.split_count=5–40}} of its live latents map onto two or more big-SAE
# latents at once (cosine above 0.6) — candidates for a direction carved more finely. Look at such a latent and its partners with the
# dashboards below to see how they split.
#
# # Part 4 — What does a latent mean? Feature dashboards
#
# A dashboard for one latent shows where it fires most (its top-activating contexts), how its
# activations are distributed, and what it does downstream (the tokens its decoder direction
# promotes and suppresses through the unembedding). We read the shipped SAE's latents.

# %%
latents = shipped_latents.reshape(len(eval_tokens), -1, shipped.cfg.d_sae)  # (seq, pos - 1, d_sae)
latents = torch.cat([torch.zeros(len(eval_tokens), 1, shipped.cfg.d_sae), latents], dim=1)  # BOS gets 0
print("latents per sequence position:", tuple(latents.shape))

# %% [markdown]
# ## Exercise 4.10 — top-activating contexts
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def top_activations(latent_acts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k largest activations of one latent over a batch of sequences.

    latent_acts: (n_seq, pos). Returns (seq indices (k,), pos indices (k,), values (k,)), largest first.
    """
    # BEGIN SOLUTION
    values, flat = latent_acts.flatten().topk(k)
    return flat // latent_acts.shape[1], flat % latent_acts.shape[1], values
    # END SOLUTION


ch04.check_top_activations(top_activations)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `topk` on the flattened tensor, then turn each flat index back into (sequence, position)
# with `//` and `%` by the number of positions (`latent_acts.shape[1]`).
# </details>
#
# Take the latent with the single largest activation on our held-out text (`LATENT`). Here
# are its top contexts, each token coloured by the latent's activation (hover for values); ⏎
# separates contexts.

# %%
LATENT = int(latents.amax(dim=(0, 1)).argmax())
sae.top_contexts_figure(model, eval_tokens, latents[..., LATENT], k=6)

# %%
sae.activation_histogram(latents[..., LATENT], LATENT)

# %% [markdown]
# ## Exercise 4.11 — which tokens does a latent promote?
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# A latent writes its decoder direction d into the residual stream. If nothing later changed
# it, its effect on the logits would be d pushed through the final LayerNorm and the
# unembedding. The LayerNorm subtracts the mean of the vector, divides by a scale (a positive
# number common to all logits, which we leave out), and multiplies by its weight. Our weights
# are raw Hugging Face weights, so that weight is not folded into `W_U`: apply it yourself.


# %%
def logit_effects(direction: torch.Tensor, W_U: torch.Tensor, ln_weight: torch.Tensor) -> torch.Tensor:
    """The direct effect of a residual direction on every logit, through the final LayerNorm.

    direction: (d_model,), W_U: (d_model, d_vocab), ln_weight: (d_model,). Returns (d_vocab,).
    """
    # BEGIN SOLUTION
    centred = direction - direction.mean()
    return (centred * ln_weight) @ W_U
    # END SOLUTION


ch04.check_logit_effects(logit_effects)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Centre (`direction - direction.mean()`), multiply by `ln_weight` elementwise, then `@ W_U`.
# </details>

# %%
ln_weight = model.norm_module(None).weight.detach()
effects = logit_effects(shipped.W_dec_normalized[LATENT].detach(), model.W_U.detach(), ln_weight)
for label, ids in [("promotes", effects.topk(10).indices), ("suppresses", (-effects).topk(10).indices)]:
    print(f"latent {LATENT} {label}:", [model.to_str_tokens(ids[i : i + 1])[0] for i in range(len(ids))])

# %% [markdown]
# ### A latent browser
#
# `widgets.latent_browser` puts it together: type a latent index and its dashboard (top contexts,
# density, promoted and suppressed tokens) redraws. It is plain HTML, so it works offline and in
# Colab. Page through twenty latents and, for each, write down a label in plain words.

# %%
widgets.latent_browser(model, eval_tokens, latents, shipped.W_dec_normalized.detach(), latent=LATENT)

# %% [markdown]
# ### Checking labels against the ground truth
#
# Here we have what no one studying a real LLM has: the generator that wrote every sentence.
# `sae.token_labels` tags each token with its category in the generator (name, place, animal
# member, number, give verb, …) or, inside an indirect-object sentence, its **role** — `IO` and
# `S1` (the two names of "Mary and John"), `S2` (the subject's second mention), `END` (the "to"
# before the answer) and `IO answer`. Roles come from the grammar, not from the word: the same
# name is `IO` in one sentence and `S2` in the next.
#
# `sae.label_latents` gives each latent the label most common among its 20 top activations and
# keeps it when at least 80% agree. How many latents match a known category?

# %%
labels = [sae.token_labels(model.to_str_tokens(seq)) for seq in eval_tokens]
found = sae.label_latents(latents, labels, top_k=20, min_share=0.8)
n_alive = int((latents.flatten(0, 1) > 0).any(0).sum())
generator_labels = [f for f in found if not f[1].startswith("'")]
print(f"{len(found)} of {n_alive} live latents have a label shared by >= 80% of their top 20 activations;")
print(
    f"{len(generator_labels)} of them match a category or IOI role of the generator, "
    f"{len(found) - len(generator_labels)} a single word."
)
counts: dict[str, int] = {}
for _, lab, _ in generator_labels:
    counts[lab] = counts.get(lab, 0) + 1
print("latents per generator label:", dict(sorted(counts.items(), key=lambda kv: -kv[1])))

# %%
by_label = {lab: lat for lat, lab, _ in reversed(generator_labels)}
for lab in ["name", "number", "S2", "END", "IO answer", "animal (member)"]:
    if lab in by_label:
        lat = by_label[lab]
        seqs, poss, _ = top_activations(latents[..., lat], 3)
        ctx = [
            " ".join(model.to_str_tokens(eval_tokens[s, max(1, p - 5) : p + 1]))
            for s, p in zip(seqs.tolist(), poss.tolist())
        ]
        print(f"{lab:16} latent {lat:4}: ...{' | ...'.join(ctx)}")

# %% [markdown]
# The automatic labeller is strict (80% of the top 20) and only knows our categories, so it
# undercounts: a latent for "names after *and*" or "the object being given" fits no single
# label. Open some unlabelled latents in the browser and see if you can name them.
#
# # Part 5 — Steering with a latent
#
# If a latent really is a feature the model uses, writing its direction into the residual
# stream should make the model act as if the feature were present. Add α · d to the activation at
# every position during generation, with d the latent's unit decoder direction, and watch the
# output change.
#
# ## Exercise 4.12 — a steering hook
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes


# %%
def steering_hook(direction: torch.Tensor, alpha: float):
    """A forward hook fn(activation, hook) adding alpha * direction / ||direction|| at every position.

    direction: (d_model,); the activation is (batch, pos, d_model). Returns the hook function.
    """
    # BEGIN SOLUTION
    unit = direction / direction.norm()

    def hook(x: torch.Tensor, hook) -> torch.Tensor:
        return x + alpha * unit

    return hook
    # END SOLUTION


ch04.check_steering_hook(steering_hook)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Return a function that closes over the unit direction: the hook adds the same vector to every
# position of every sequence.
# </details>
# <details><summary>Hint 2</summary>
#
# `unit = direction / direction.norm()`, then `def hook(x, hook): return x + alpha * unit` —
# broadcasting adds a `(d_model,)` vector to `(batch, pos, d_model)`. Return a new tensor; do
# not change `x` in place.
# </details>
#
# Which latent? Let us find the one most selective for **vehicles**: the largest gap between its
# firing rate on vehicle words ("car", "truck", …) and on every other token. Then steer three
# prompts with it, at growing strengths α (for scale: a residual vector here has norm about {{claim:ch04.resid_norm=10±1}}).

# %%
vehicle_ids = torch.tensor(model.tokenizer.convert_tokens_to_ids(VEHICLES))
is_vehicle = torch.isin(eval_tokens, vehicle_ids)  # (seq, pos)
fires = latents > 0
selectivity = fires[is_vehicle].float().mean(0) - fires[~is_vehicle].float().mean(0)
steer_latent = int(selectivity.argmax())
print(
    f"latent {steer_latent} fires on {fires[is_vehicle][:, steer_latent].float().mean():.0%} of vehicle words "
    f"and {fires[~is_vehicle][:, steer_latent].float().mean():.1%} of other tokens"
)
direction = shipped.W_dec_normalized[steer_latent].detach()
steer_prompts = ["a car is a", "a horse is an", "Paris is in"]
outputs: dict[float, list[str]] = {}
for prompt in steer_prompts:
    for alpha in [0.0, 4.0, 8.0, 12.0]:
        with model.hooks(fwd_hooks=[(HOOK, steering_hook(direction, alpha))]):
            out = model.generate(prompt, max_new_tokens=3, do_sample=False)
        outputs.setdefault(alpha, []).append(out)
        print(f"alpha = {alpha:4}: {out}")


def names_a_vehicle(output: str, prompt: str) -> bool:
    """Whether the generated continuation (after the prompt) contains a vehicle word."""
    return any(word in VEHICLES for word in output.split()[len(prompt.split()) :])


claim("ch04.steer_changed_at_4", sum(a != b for a, b in zip(outputs[0.0], outputs[4.0])))
claim(
    "ch04.steer_vehicles_at_8",
    sum(
        names_a_vehicle(o, q) and not names_a_vehicle(o0, q)
        for o, o0, q in zip(outputs[8.0], outputs[0.0], steer_prompts)
    ),
)

# %% [markdown]
# At α = 0 the model says what it learned, and at α = 4 the nudge is still too weak to matter
# ({{claim:ch04.steer_changed_at_4=0}} of the three continuations change). Around α = 8 the vehicle feature takes over — in
# {{claim:ch04.steer_vehicles_at_8=3}} of the three prompts the model names a vehicle where a category or a country belonged — and at larger α it degenerates into repeating words the direction promotes.
# Steering is a blunt causal test: it shows the direction *does* something vehicle-shaped, not
# that the model uses it exactly this way. Try other latents from the browser.
#
# # Where next
#
# - **SAELens** ([docs](https://jbloomaus.github.io/SAELens/)) trains SAEs at scale (ReLU,
#   TopK, JumpReLU, gated), streams activations from large models, and loads hundreds of
#   pretrained SAEs for GPT-2, Pythia and Gemma. Everything in this chapter — the forward pass,
#   the losses, the metrics, dashboards (see also [Neuronpedia](https://www.neuronpedia.org)) —
#   carries over.
# - **Feature splitting, absorption, and dead latents** at scale: Templeton et al. (2024);
#   Chanin et al., [*A is for Absorption*](https://arxiv.org/abs/2409.14507) (2024).
#
# ## Try it on GPT-2
#
# With a network connection, the same tools work on GPT-2 small: collect its residual stream
# at layer 6 on some text and train a small TopK SAE (slow on a CPU; a few minutes on a GPU).

# %%
if online():
    gpt2 = load_model("gpt2")
    texts = [" ".join(p.text + p.answer + "." for p in ioi_prompts(8, seed=s)) for s in range(40)]
    gpt2_tokens = gpt2.to_tokens(texts)[:, :64]
    gpt2_acts = sae.collect_activations(gpt2, gpt2_tokens, "blocks.6.hook_resid_pre")
    d_model = gpt2.cfg.d_model  # 768 for GPT-2 small
    gpt2_sae = sae.SAE(sae.SAEConfig(d_in=d_model, d_sae=4 * d_model, k=32, hook_name="blocks.6.hook_resid_pre"))
    sae.train_sae(gpt2_sae, gpt2_acts, steps=300, batch_size=256)
    print(sae.evaluate_sae(gpt2_sae, gpt2_acts, gpt2, gpt2_tokens))
else:
    print("Offline: skipping GPT-2.")

# %% [markdown]
# ## Try it on a real model
#
# The same SAE code runs on every family digsite supports (`docs/models.md`). Gemma Scope
# (Lieberum et al., 2024, *Gemma Scope: Open Sparse Autoencoders Everywhere All At Once on
# Gemma 2*) published SAEs for every layer of **Gemma 2 2B**; the hook names are shared, so
# `digsite.saelens.load_saelens(folder)` loads one (downloaded in SAELens's format) and the
# dashboards and metrics above run on it. The cell below trains a small TopK SAE on Gemma 2's
# residual stream in the middle of the model, as the GPT-2 cell did — on a GPU (bfloat16 model,
# a minute or two); on a CPU use `"EleutherAI/pythia-160m"`. Expect a worse reconstruction than
# on the organism at this budget: 300 steps on a few thousand tokens is a toy run (we could not
# run it where the course was written, offline). `google/gemma-2-2b` is gated: accept its licence
# on the hub and log in. Needs a network; skipped offline.

# %%
if online():
    real = load_model("google/gemma-2-2b", device=device, dtype=torch.bfloat16 if device.type == "cuda" else None)
    texts = [" ".join(p.text + p.answer + "." for p in ioi_prompts(8, seed=s)) for s in range(40)]
    real_tokens = real.to_tokens(texts)[:, :64]
    hook_name = f"blocks.{real.cfg.n_layers // 2}.hook_resid_pre"
    real_acts = sae.collect_activations(real, real_tokens, hook_name).float()
    d_model = real.cfg.d_model  # 2304 for Gemma 2 2B
    real_sae = sae.SAE(sae.SAEConfig(d_in=d_model, d_sae=4 * d_model, k=32, hook_name=hook_name)).to(real_acts.device)
    sae.train_sae(real_sae, real_acts, steps=300, batch_size=256)
    print(real.cfg.architecture, hook_name, sae.evaluate_sae(real_sae, real_acts))
else:
    print("Offline: skipping the real model (load_model needs the hub).")
