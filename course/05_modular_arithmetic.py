# %% [markdown]
# # Chapter 5 — Modular arithmetic: how a transformer adds with waves
#
# How does a neural network compute `(a + b) mod p`? You might guess it learns a lookup table,
# or carries digits like a schoolchild. The bundled 1-layer transformer `modadd` does neither.
# It turns each number into a handful of **waves** — cosines and sines at a few frequencies —
# and adds angles with trigonometric identities, like a clock hand turning by `a` and then by
# `b`. Spoiler: it's weird, and it is one of the few networks whose algorithm we can read off
# completely.
#
# This model also **grokked**: it first memorised its training set, and only more than a
# thousand steps later — long after training accuracy hit 100% — did it generalise. You will
# see that happen in its saved training curves, then open it up and find the waves.
#
# **Goals**
# - Read the grokking curves: memorisation first, generalisation much later.
# - Build the Fourier basis of the integers mod p, project the embedding onto it, and find
#   the **key frequencies** the model computes with.
# - See that MLP neurons are periodic functions of `(a, b)`.
# - Check that the logits are (mostly) a sum of `cos(w(a + b − c))` terms.
# - Test how much the key frequencies matter: remove every other frequency, then the key
#   frequencies themselves, from the embedding and from the logits — and see where the story
#   holds and where it breaks.
# - Read the last step of the algorithm from the MLP and unembedding weights alone.
# - Measure the algorithm forming over training with progress measures (restricted and
#   excluded loss) on the organism's own checkpoints.
# - Watch a smaller model grok live, and break it by removing a single frequency.
#
# **Prerequisites:** chapter 1 (hooks, `run_with_cache`, `run_with_hooks`); `einsum`; the
# idea of a Fourier series (we re-derive what we need).
#
# **Time:** about 3 hours (two of them for sections 1–6, one for the weights and the progress
# measures of sections 7–8).
#
# **Readings**
# - Power et al., [*Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets*](https://arxiv.org/abs/2201.02177) (2022) —
#   the phenomenon.
# - Nanda et al., [*Progress measures for grokking via mechanistic interpretability*](https://arxiv.org/abs/2301.05217) (2023) —
#   the algorithm this chapter recovers, and the source of every convention here.
# - Zhong et al., [*The Clock and the Pizza: Two Stories in Mechanistic Explanation of Neural Networks*](https://arxiv.org/abs/2306.17844) (2023) —
#   other models find other algorithms for the same task (optional).
# - Zhou et al., [*Pre-trained Large Language Models Use Fourier Features to Compute Addition*](https://arxiv.org/abs/2406.03445) (2024) —
#   the same trick inside real language models (optional).

# %%
import plotly.express as px
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from digsite import fourier, load_model, plot, wrap
from digsite.checks import ch05
from digsite.claims import claim
from digsite.notebook import online, setup
from digsite.organisms.data import all_pairs, modadd_dataset

device = setup(seed=0)
print("Running on", device)

# %% [markdown]
# ## 1. The task, the model and its training history
#
# The model reads three tokens, `a b =`, where token `i` is the number `i` for `i < p` and
# token `p` is `=`. At the last position it predicts `(a + b) mod p`. It is a GPT-2 with one
# block: 4 attention heads, `d_model = 128`, a ReLU MLP with 512 neurons. It was trained full
# batch on a random 30% of the `p² = 12,769` pairs, with strong weight decay, and tested on the
# other 70%. The training history — losses and accuracies every 25 steps — ships beside the
# weights. On the held-out pairs it is right {{claim:ch05.test_accuracy=100.00%}} of the time.

# %%
model = load_model("modadd", device=device)
history = fourier.load_history("modadd")
p = history["config"]["p"]
train_x, train_y, test_x, test_y = modadd_dataset(
    p, history["config"]["frac_train"], seed=history["config"]["data_seed"]
)
print(model)
print(f"p = {p}: {len(train_x)} training pairs, {len(test_x)} test pairs")

with torch.no_grad():
    test_logits = model(test_x)[:, -1, :p]
test_accuracy = (test_logits.argmax(-1).cpu() == test_y).float().mean()
print(f"test accuracy: {test_accuracy:.2%}")
claim("ch05.test_accuracy", 100 * test_accuracy)
for a, b in [(47, 10), (100, 50), (112, 112)]:
    guess = model(torch.tensor([[a, b, p]]))[0, -1, :p].argmax().item()
    print(f"{a} + {b} = {a + b}  ≡ {(a + b) % p} (mod {p});  model says {guess}")

# %% [markdown]
# ### Grokking
#
# Look at the curves. Training accuracy passes 99% at step {{claim:ch05.memorised_step=100}}: the model has **memorised**
# the training pairs. Test accuracy stalls near {{claim:ch05.plateau_test_acc=30%}} — why not near 0 is the next
# cell's question — then creeps up for a thousand steps and jumps past 99% at step
# {{claim:ch05.generalised_step=1,375}}, with nothing new in the data. That delayed generalisation is **grokking**
# (Power et al. 2022). Nanda et al.'s model, trained on the same 30% of the pairs, waited about
# ten thousand steps; ours is quicker — it differs in other ways (it has LayerNorm, and its own
# learning rate and weight decay, listed on its card) and we have not tested which of them
# matters. The shape is the same.
#
# Why does it happen at all? Nanda et al. show that the general algorithm builds up gradually
# *during* the plateau, hidden under the memorised solution; **weight decay** keeps pushing
# towards the smaller, general circuit, and once it is strong enough the memorisation is
# cleaned away. The sudden jump in test accuracy is the end of a slow process, not the start.

# %%
records = history["history"]
memorised = next(r["step"] for r in records if r["train_acc"] >= 0.99)
generalised = next(r["step"] for r in records if r["test_acc"] >= 0.99)
print(f"train accuracy ≥ 99% at step {memorised}; test accuracy ≥ 99% at step {generalised}")
plateau = next(r["test_acc"] for r in records if r["step"] >= memorised)
claim("ch05.memorised_step", memorised)
claim("ch05.plateau_test_acc", 100 * plateau)
claim("ch05.generalised_step", generalised)
fourier.grokking_figure(records, title=f"The modadd organism groks (a + b) mod {p}")

# %% [markdown]
# ### A control: memorisation plus commutativity
#
# A model that has only memorised its training pairs should get about 1 in `p` of the test
# pairs right — chance. Why does the plateau sit so far above it? Addition is commutative: the test
# pair `(a, b)` has the same answer as its mirror `(b, a)`, and with 30% of all pairs in
# training, about 30% of test pairs have their mirror there. A model that memorised and treats
# `a b` and `b a` alike — easy for attention, which sums over positions — gets exactly those
# right. Count them:

# %%
train_pairs = {(a, b) for a, b in train_x[:, :2].tolist()}
has_mirror = torch.tensor([(b, a) in train_pairs for a, b in test_x[:, :2].tolist()])
print(f"test pairs whose mirror (b, a) is a training pair: {has_mirror.float().mean():.1%}")
print(f"test accuracy on the plateau, right after memorisation: {plateau:.1%}; chance: {1 / p:.1%}")
claim("ch05.mirror_fraction", 100 * has_mirror.float().mean())
claim("ch05.chance", 100 / p)
claim("ch05.plateau_again", 100 * plateau)

# %% [markdown]
# {{claim:ch05.mirror_fraction=29.9%}} of the test pairs have their mirror in training, against a plateau near
# {{claim:ch05.plateau_again=30%±2%}} and chance at {{claim:ch05.chance=0.9%}}: the plateau is what memorisation plus commutativity
# predicts. Matching totals are only suggestive, though: the claim is about *which* test pairs
# the plateau model gets right. A few of the organism's training checkpoints ship with it
# (`fourier.checkpoint_steps("modadd")`; section 8 uses them all), so we can ask the model
# itself, as it was at step {{claim:ch05.memorised_step_again=100}}, when it had just memorised.

# %%
print("shipped checkpoints:", fourier.checkpoint_steps("modadd"))
plateau_model = fourier.load_checkpoint(memorised, device=device)
with torch.no_grad():
    plateau_right = (plateau_model(test_x)[:, -1, :p].argmax(-1).cpu() == test_y).float()
acc_mirror, acc_other = plateau_right[has_mirror].mean(), plateau_right[~has_mirror].mean()
print(
    f"step {memorised}: accuracy on test pairs whose mirror was trained {acc_mirror:.1%}, on the others {acc_other:.1%}"
)
claim("ch05.memorised_step_again", memorised)
claim("ch05.plateau_acc_mirror", 100 * acc_mirror)
claim("ch05.plateau_acc_other", 100 * acc_other)

# %% [markdown]
# The memorised model is right on {{claim:ch05.plateau_acc_mirror=98%}} of the test pairs whose mirror it was trained
# on, and on {{claim:ch05.plateau_acc_other=1.1%}} of the others. The plateau is memorisation plus commutativity,
# pair by pair: not early generalisation.

# %% [markdown]
# ## 2. The Fourier basis of the integers mod p
#
# A function of one number `x ∈ {0, …, p−1}` is just a vector of `p` values. The **Fourier
# basis** is a different set of `p` axes for the same space: a constant, and for each
# frequency `k = 1 … (p−1)/2` a cosine and a sine wave that wind `k` times around the circle:
#
# $$\cos\left(\tfrac{2\pi k x}{p}\right), \qquad \sin\left(\tfrac{2\pi k x}{p}\right).$$
#
# That is `1 + 2·(p−1)/2 = p` vectors, and they are orthogonal. We normalise each to length 1
# and stack them as **rows** of a `(p, p)` matrix, in the order
# `const, cos 1, sin 1, cos 2, sin 2, …` — so frequency `k` lives in rows `2k − 1` (cos) and
# `2k` (sin). With orthonormal rows, `basis @ f` gives the Fourier coefficients of a function
# `f` and `basis.T @ coeffs` rebuilds it.
#
# ## Exercise 5.1 — build the Fourier basis
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes


# %%
def fourier_basis(p: int) -> torch.Tensor:
    """The orthonormal Fourier basis of Z_p (p odd).

    Returns (p, p) float32 with orthonormal rows; the column is x in 0 .. p-1. Row 0 is the
    constant; for each frequency k = 1 .. (p-1)/2, row 2k-1 is the cosine wave and row 2k the
    sine wave that wind k times around Z_p (value at x = 0: positive for cos, 0 for sin).
    """
    # BEGIN SOLUTION
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * torch.pi * k * x / p))
        rows.append(torch.sin(2 * torch.pi * k * x / p))
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).float()
    # END SOLUTION


ch05.check_fourier_basis(fourier_basis)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Make `x = torch.arange(p)`, a list of rows starting with `torch.ones(p)`, then append
# `cos(2πkx/p)` and `sin(2πkx/p)` for `k` in `range(1, p // 2 + 1)`. `torch.stack` the rows
# and divide each by its norm (`basis.norm(dim=1, keepdim=True)`). Compute in float64 and
# convert at the end if you see tiny mismatches.
# </details>
#
# The heatmap below is the basis: each row a wave, slower at the top, faster further down.
# The product `basis @ basis.T` should be the identity — check it.

# %%
basis = fourier_basis(p).to(device)
labels = fourier.basis_labels(p)
print("orthonormal:", torch.allclose(basis @ basis.T, torch.eye(p, device=device), atol=1e-5))
plot.imshow(
    basis[:21], y=labels[:21], title="The first 21 Fourier basis vectors (rows)", xlabel="x", ylabel="basis vector"
)

# %% [markdown]
# ## 3. The embedding lives on a few frequencies
#
# The embedding `W_E` gives each number token a vector in `d_model = 128` dimensions; its
# first `p` rows, `(p, d_model)`, are the numbers. Read **down a column** and you get one
# embedding direction as a function of the number `x`. If the model thinks in waves, those
# functions should be made of a limited set of frequencies. Project onto the Fourier basis
# along the number axis and see.
#
# ## Exercise 5.2 — project a matrix onto the Fourier basis
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 5 minutes


# %%
def project_onto_basis(W: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Express W in the Fourier basis along its first (number) axis.

    W: (p, d) — one row per number x. basis: (p, p), orthonormal rows.
    Returns (p, d): row i holds basis vector i's coefficient for every column of W.
    """
    # BEGIN SOLUTION
    return basis @ W
    # END SOLUTION


ch05.check_project_onto_basis(project_onto_basis)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The coefficient of basis vector `i` is the dot product of that row with the function:
# `(basis @ W)[i, j] = Σ_x basis[i, x] · W[x, j]`. Make sure you contract the `p` axis of `W`,
# not its `d_model` axis.
# </details>
#
# Now the embedding. The plot shows the norm of each Fourier row of `W_E`. The spikes come in
# cos/sin pairs — a frequency, whatever the phase of its wave — above a low floor.

# %%
W_E = model.W_E[:p].detach()  # (p, d_model): the number tokens
W_E_fourier = project_onto_basis(W_E, basis)
plot.line(
    W_E_fourier.norm(dim=1),
    x=labels,
    title="Norm of each Fourier component of the embedding",
    xlabel="Fourier component",
    ylabel="norm",
)

# %% [markdown]
# ## Exercise 5.3 — rank the frequencies
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# A frequency `k` is the *pair* of rows `cos k` and `sin k` (the phase of a wave decides how
# it splits between them). Score each frequency by the norm of both rows together and return
# the `n` best.


# %%
def key_frequencies(W_fourier: torch.Tensor, n: int) -> list[int]:
    """The n frequencies with the largest norm.

    W_fourier: (p, d) in the Fourier basis along axis 0 (rows const, cos 1, sin 1, ...).
    Returns a list of n ints k in 1 .. (p-1)/2, sorted in increasing order.
    """
    # BEGIN SOLUTION
    sq = W_fourier.pow(2).sum(dim=1)  # (p,)
    n_freq = (W_fourier.shape[0] - 1) // 2
    norms = (sq[1 : 2 * n_freq : 2] + sq[2 : 2 * n_freq + 1 : 2]).sqrt()  # entry k-1 is frequency k
    return sorted(int(i) + 1 for i in norms.topk(n).indices)
    # END SOLUTION


ch05.check_key_frequencies(key_frequencies)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The score of frequency `k` is `sqrt(‖cos k‖² + ‖sin k‖²)`. Square and sum each row over
# `d` to get `(p,)`. The cos rows are `1, 3, 5, …` (slice
# `[1::2]`), the sin rows `2, 4, 6, …` (slice `[2::2]`); add them, take the square root, and
# `topk`. Index `i` of that vector is frequency `i + 1`. Leave row 0, the constant, out.
# </details>

# %%
freq_norms = fourier.frequency_norms(W_E_fourier)
print("the ten strongest frequencies:", key_frequencies(W_E_fourier, 10))
plot.line(
    freq_norms,
    x=list(range(1, p // 2 + 1)),
    title="Embedding norm per frequency",
    xlabel="frequency k",
    ylabel="sqrt(|cos k|² + |sin k|²)",
)

# %% [markdown]
# Each frequency `k` turns the number `x` into an angle `wx` with `w = 2πk/p`, and the
# embedding stores `cos(wx)` and `sin(wx)` — a point on a circle, a clock hand.
#
# Compare with the textbook model of Nanda et al.: there, five frequencies stood alone and
# everything else was zero. Our organism's spectrum is messier — a dozen tall frequencies and
# a floor that never reaches zero. It stopped training {{claim:ch05.cleanup_steps=825}} steps after it grokked, while
# Nanda's model trained for tens of thousands more, a long **clean-up** phase in which weight
# decay strips out everything the algorithm does not need. So where is the line between "key"
# and "noise"? Looking will not settle it; an experiment will.
#
# ## Exercise 5.4 — remove frequencies from a matrix
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Remove a frequency from a matrix: afterwards no column of it has any `cos k` or `sin k`
# component, and everything else — the constant included — is untouched.


# %%
def ablate_frequencies(W: torch.Tensor, basis: torch.Tensor, remove: list[int]) -> torch.Tensor:
    """W with the given frequencies projected out along its first axis.

    W: (p, d); basis: (p, p) orthonormal rows; remove: frequencies k in 1 .. (p-1)/2.
    Returns (p, d), the same shape as W.
    """
    # BEGIN SOLUTION
    coeffs = basis @ W
    for k in remove:
        coeffs[2 * k - 1] = 0.0  # cos k
        coeffs[2 * k] = 0.0  # sin k
    return basis.T @ coeffs
    # END SOLUTION


ch05.check_ablate_frequencies(ablate_frequencies)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `coeffs = basis @ W`; for each `k`, set rows `2k − 1` and `2k` to zero; return
# `basis.T @ coeffs` (the inverse of an orthonormal matrix is its transpose).
# </details>
#
# `fourier.evaluate_all_pairs(model, p, W_numbers=...)` runs all `p²` inputs with a
# `hook_embed` hook that swaps in a new embedding of the number tokens, and returns the
# accuracy and loss. Keep only the strongest `n` frequencies of the embedding — delete all
# the others — and grow `n` until the model gets 99.9% of the sums right again. Those are the
# **key frequencies**.

# %%
claim("ch05.cleanup_steps", records[-1]["step"] - generalised)
all_freqs = list(range(1, p // 2 + 1))
ranked = (freq_norms.argsort(descending=True) + 1).tolist()  # frequencies, strongest first
keep_curve = {}
for n in range(1, 21):
    kept = ranked[:n]
    W_kept = ablate_frequencies(W_E, basis, [k for k in all_freqs if k not in kept])
    keep_curve[n] = fourier.evaluate_all_pairs(model, p, W_kept)["accuracy"]
    if keep_curve[n] >= 0.999:
        break
key_freqs = sorted(ranked[:n])
print("accuracy keeping only the top n frequencies:", {n: f"{acc:.1%}" for n, acc in keep_curve.items()})
print(f"key frequencies ({len(key_freqs)} of {len(all_freqs)}): {key_freqs}")
claim("ch05.n_key", len(key_freqs))
claim("ch05.only_key_accuracy", 100 * keep_curve[n])

# %% [markdown]
# {{claim:ch05.n_key=10}} frequencies out of 56 are enough: with all the others deleted from the
# embedding the model still gets {{claim:ch05.only_key_accuracy=99.99%}} of the 12,769 sums right. With fewer than ten, accuracy drops step by step — there is no single sharp
# cut-off, one more sign of a model that has not finished cleaning up.
#
# ## 4. Neurons are waves over (a, b)
#
# After attention has moved `a` and `b` to the `=` position, the MLP must combine them.
# Trigonometry says how a clock can add: `cos(w(a+b)) = cos(wa)cos(wb) − sin(wa)sin(wb)`. The
# products are where the MLP's ReLUs come in. So a neuron's activation, as a function of both
# inputs, should be a wave in `a` and `b`.
#
# ## Exercise 5.5 — every neuron on every input
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Run the model on all `p²` inputs (`all_pairs(p)` lists them with `a` major: row
# `a·p + b`) and return the MLP activations *after* the ReLU (`blocks.0.mlp.hook_post`) at the
# `=` position, reshaped so that you can index them `[a, b, neuron]`.


# %%
def neuron_acts(model, p: int) -> torch.Tensor:
    """MLP activations after the ReLU at the "=" position for every input.

    model: the hooked modular-addition model. Returns (p, p, d_mlp), indexed [a, b, neuron].
    """
    # BEGIN SOLUTION
    tokens, _ = all_pairs(p)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, -1].reshape(p, p, -1)
    # END SOLUTION


ch05.check_neuron_acts(neuron_acts)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `tokens, labels = all_pairs(p)`, then
# `_, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")`. The
# cached tensor is `(p*p, 3, d_mlp)`: take position `-1` and `reshape(p, p, -1)` — a-major
# order makes the first axis `a`.
# </details>
#
# ## Exercise 5.6 — the 2-D Fourier transform
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# To see *which* waves a neuron is made of, transform over both inputs: the coefficient
# `[i, j]` measures how much of `basis_i(a) · basis_j(b)` is in the activation.


# %%
def fourier_2d(acts: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Fourier transform over both inputs.

    acts: (p, p, n) indexed [a, b, ...]; basis: (p, p) orthonormal rows.
    Returns (p, p, n): entry [i, j] is the coefficient of basis_i(a) * basis_j(b).
    """
    # BEGIN SOLUTION
    return torch.einsum("ia,jb,abn->ijn", basis, basis, acts)
    # END SOLUTION


ch05.check_fourier_2d(fourier_2d)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Apply the 1-D transform to each axis: `torch.einsum("ia,jb,abn->ijn", basis, basis, acts)`,
# or `basis @ acts[..., n] @ basis.T` neuron by neuron.
# </details>
#
# A neuron "uses" frequency `k` when its 2-D coefficients sit in the `const`, `cos k` and
# `sin k` rows and columns. `fourier.neuron_frequencies` scores every frequency that way and
# returns each neuron's best one with the fraction of the neuron's variance it explains. Here
# are the four cleanest neurons of different frequencies: striped, periodic patterns over
# `(a, b)` — 2-D waves, not a lookup table.

# %%
acts = neuron_acts(model, p)  # (p, p, d_mlp)
acts_fourier = fourier_2d(acts, basis)
neuron_freq, neuron_frac = fourier.neuron_frequencies(acts, basis)
shown, seen = [], set()
for n in neuron_frac.argsort(descending=True).tolist():
    if neuron_freq[n].item() not in seen:
        shown.append(n)
        seen.add(neuron_freq[n].item())
    if len(shown) == 4:
        break
fig = px.imshow(
    acts[:, :, shown].permute(2, 0, 1).cpu(),
    facet_col=0,
    color_continuous_scale="Blues",
    labels=dict(x="b", y="a", color="activation"),
    title="Neuron activations over every (a, b)",
)
for i, n in enumerate(shown):
    fig.layout.annotations[i].text = f"neuron {n}: frequency {neuron_freq[n].item()} ({neuron_frac[n]:.0%})"
fig

# %% [markdown]
# In the Fourier basis the first of them is almost empty: a few bright entries in the rows
# and columns of one frequency, nothing else.

# %%
n0 = shown[0]
coeffs = acts_fourier[:, :, n0].clone()
coeffs[0, 0] = 0  # the constant term dwarfs the rest
plot.imshow(
    coeffs,
    x=labels,
    y=labels,
    title=f"Neuron {n0} in the 2-D Fourier basis (const × const removed)",
    xlabel="component of b",
    ylabel="component of a",
)

# %% [markdown]
# Now every neuron. About half of them ({{claim:ch05.neurons_key_best=249}} of 512) have a key frequency as their best
# frequency, but in this organism most neurons mix several frequencies: only {{claim:ch05.neurons_one_frequency=29%}} get more than
# half their variance from one — another sign of the clean-up it never had.

# %%
in_key = sum(int((neuron_freq == k).sum()) for k in key_freqs)
print(f"{in_key} of {acts.shape[-1]} neurons have a key frequency as their best frequency")
print(f"{(neuron_frac > 0.5).float().mean():.0%} of neurons have over half their variance explained by one frequency")
claim("ch05.neurons_key_best", in_key)
claim("ch05.neurons_one_frequency", 100 * (neuron_frac > 0.5).float().mean())
plot.scatter(
    neuron_freq,
    neuron_frac,
    title="Each neuron's best frequency and the variance it explains",
    xlabel="frequency",
    ylabel="fraction of variance explained",
)

# %% [markdown]
# ## 5. The logits are a sum of cos(w(a + b − c))
#
# Nanda et al. read the rest of the algorithm off the weights: the MLP output and the
# unembedding turn the neurons' products into, for each key frequency `w`,
#
# $$\text{logit}(c \mid a, b) \approx \sum_{w \in \text{key}} \alpha_w \cos\big(w(a + b - c)\big).$$
#
# Every term is largest — exactly 1 — when `c ≡ a + b (mod p)`, and the waves of different
# frequencies disagree everywhere else, so their sum has one sharp peak: constructive
# interference at the right answer.
#
# ## Exercise 5.7 — the cos(w(a + b − c)) terms
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def cos_logit_terms(p: int, freqs: list[int]) -> torch.Tensor:
    """The logit wave of each frequency: the cosine of frequency k's angle of a + b - c, k in freqs.

    Returns (len(freqs), p, p, p) float32, indexed [i, a, b, c] for the i-th frequency of freqs;
    each entry is 1 exactly where c = (a + b) mod p.
    """
    # BEGIN SOLUTION
    x = torch.arange(p, dtype=torch.float64)
    abc = x[:, None, None] + x[None, :, None] - x[None, None, :]  # (p, p, p)
    k = torch.tensor(freqs, dtype=torch.float64)[:, None, None, None]
    return torch.cos(2 * torch.pi * k * abc / p).float()
    # END SOLUTION


ch05.check_cos_logit_terms(cos_logit_terms)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Build `a + b − c` as a `(p, p, p)` tensor by broadcasting `x[:, None, None] + x[None, :, None]
# − x[None, None, :]`, then multiply by `2πk/p` for each `k` (one more leading axis) and take
# `cos`. Float64 first avoids rounding error for large `a + b − c`.
# </details>
#
# Now fit the model's logits with these terms. Logits only matter up to a constant per input
# (softmax ignores it), so we centre them over `c`, then solve a least-squares problem for one
# coefficient `α_w` per key frequency.

# %%
tokens, labels_all = all_pairs(p)
with torch.no_grad():
    logits = model(tokens)[:, -1, :p].reshape(p, p, p).float()  # [a, b, c]
logits = logits - logits.mean(dim=-1, keepdim=True)
terms = cos_logit_terms(p, key_freqs).to(logits.device)  # (n_key, p, p, p)
alpha = torch.linalg.lstsq(terms.reshape(len(key_freqs), -1).T, logits.reshape(-1, 1)).solution[:, 0]
fitted = torch.einsum("k,kabc->abc", alpha, terms)
explained = 1 - (logits - fitted).pow(2).sum() / logits.pow(2).sum()
fit_acc = (fitted.argmax(-1).reshape(-1).cpu() == labels_all).float().mean()
print("coefficients α_w:", {k: round(a, 2) for k, a in zip(key_freqs, alpha.tolist())})
print(
    f"{len(key_freqs)} cos(w(a+b-c)) terms explain {explained:.1%} of the logits' variance; "
    f"their argmax alone gets {fit_acc:.1%} of all pairs right"
)
claim("ch05.fit_explained", 100 * explained)
claim("ch05.fit_accuracy", 100 * fit_acc)

# %%
a_fixed = 5
fig = px.imshow(
    torch.stack([logits[a_fixed], fitted[a_fixed]]).cpu(),
    facet_col=0,
    color_continuous_scale="RdBu",
    color_continuous_midpoint=0.0,
    labels=dict(x="c", y="b", color="logit"),
    title=f"Centred logits for a = {a_fixed}, every b and c",
)
fig.layout.annotations[0].text, fig.layout.annotations[1].text = "the model", "the cos(w(a+b-c)) fit"
claim("ch05.n_terms", len(key_freqs))
fig

# %% [markdown]
# The two panels should look alike: a bright diagonal line where `c = a + b`, the right
# answer, and the same ripples around it. The {{claim:ch05.n_terms=10}} terms explain {{claim:ch05.fit_explained=66%±3%}} of the centred logits'
# variance, and their argmax alone is right for {{claim:ch05.fit_accuracy=100.0%}} of the pairs.
#
# ## 6. Which frequencies can the model live without?
#
# A story about a network is only as good as the experiment that could have broken it. You
# already kept *only* the key frequencies. Now remove them instead: each key frequency on
# its own, then all of them together — and, as a control, as many non-key frequencies.

# %%
non_key = [k for k in all_freqs if k not in key_freqs]
results = {"original": fourier.evaluate_all_pairs(model, p)}
results["only key frequencies"] = fourier.evaluate_all_pairs(model, p, ablate_frequencies(W_E, basis, non_key))
for k in key_freqs:
    results[f"without {k}"] = fourier.evaluate_all_pairs(model, p, ablate_frequencies(W_E, basis, [k]))
results["without all key"] = fourier.evaluate_all_pairs(model, p, ablate_frequencies(W_E, basis, key_freqs))
control = ranked[len(key_freqs) : 2 * len(key_freqs)]  # the next strongest, same number
results["without the next strongest"] = fourier.evaluate_all_pairs(model, p, ablate_frequencies(W_E, basis, control))
for name, r in results.items():
    print(f"{name:>28}: accuracy {r['accuracy']:7.2%}   loss {r['loss']:.4f}")
claim("ch05.only_key_again", 100 * results["only key frequencies"]["accuracy"])
claim("ch05.without_all_key", 100 * results["without all key"]["accuracy"])
claim("ch05.without_next", 100 * results["without the next strongest"]["accuracy"])
singles = [results[f"without {k}"] for k in key_freqs]
claim("ch05.single_min_accuracy", 100 * min(r["accuracy"] for r in singles))
claim("ch05.single_loss_ratio", min(r["loss"] for r in singles) / results["original"]["loss"])
claim("ch05.single_loss_ratio", max(r["loss"] for r in singles) / results["original"]["loss"])
go.Figure(go.Bar(x=list(results), y=[r["accuracy"] for r in results.values()])).update_layout(
    title="Ablating frequencies of the embedding", yaxis_title="accuracy on all pairs"
)

# %% [markdown]
# Read the numbers. Keeping only the key frequencies leaves the model working ({{claim:ch05.only_key_again=99.99%}}).
# Removing all of them from the embedding drops accuracy to {{claim:ch05.without_all_key=69%}}, while removing the next
# strongest frequencies, as many, costs almost nothing ({{claim:ch05.without_next=99.95%}}). So the key frequencies carry
# far more of what the embedding tells the rest of the model than other frequencies of similar
# strength do. They are not all of it: with them gone, the model is still right on two thirds
# of the pairs, dozens of times chance. And this experiment only edits the *embedding*; the attention, the
# MLP and the unembedding read and write frequencies too. The next cell removes the key
# frequencies where the answer is read out as well.
#
# Removing any **single** key frequency leaves accuracy at {{claim:ch05.single_min_accuracy=100.0%}} — only the loss rises,
# {{claim:ch05.single_loss_ratio=1.5–5}} times. Why? The logits are a sum of waves that all peak at `a + b`; with ten of
# them the peak still wins when one wave is missing. (Even the fit above needed all ten to
# explain two thirds of the logits.) This organism's solution is **redundant**: spread over
# many frequencies, as models are before the clean-up phase ends. A model that has cleaned up
# uses just a few frequencies, and then each one is essential. Section 9 trains one.
#
# First, the output side. By section 5 the logits are mostly `cos(w(a + b − c))` waves over
# the candidate answer `c`; remove the key frequencies from the logits along `c` (the same
# projection as before, applied to the output), alone and together with the embedding
# ablation:

# %%
tokens_all, labels_all = all_pairs(p)
W_no_key = ablate_frequencies(W_E, basis, key_freqs)
with torch.no_grad():
    out_clean = model(tokens_all)[:, -1, :p].float()
    out_no_key_in = model.run_with_hooks(
        tokens_all, fwd_hooks=[("hook_embed", fourier.embedding_replacement_hook(tokens_all, W_no_key))]
    )[:, -1, :p].float()


def accuracy_without_key_output(out: torch.Tensor) -> float:
    """Accuracy when the key frequencies are projected out of the logits (p*p, p) along c."""
    ablated = ablate_frequencies(out.T, basis, key_freqs).T
    return (ablated.argmax(-1).cpu() == labels_all).float().mean().item()


only_output = accuracy_without_key_output(out_clean)
both = accuracy_without_key_output(out_no_key_in)
print(f"key frequencies removed from the logits only: {only_output:.1%}; from the embedding and the logits: {both:.1%}")
claim("ch05.without_key_output", 100 * only_output)
claim("ch05.without_key_both", 100 * both)

# %% [markdown]
# A surprise, and a useful one. Removed from the logits alone, the key frequencies leave the
# model right on {{claim:ch05.without_key_output=94%}} of the pairs; removed from the embedding *and* the logits, on
# {{claim:ch05.without_key_both=94%}}. The other 46 frequencies, each weak, together still peak at the right answer for
# most pairs. So in this organism the key frequencies are the largest part of the algorithm —
# ten waves explain two thirds of the logits, and they are what you see when you look — but
# not all of it: the answer is also spelled out, more faintly, in the frequencies we called
# noise. A claim such as "the key frequencies *are* the algorithm" needs an experiment that
# could break it; here it breaks. It would hold for a model that finished cleaning up, like
# the one in section 9.
#
# ## 7. Reading the algorithm from the weights
#
# So far the evidence came from the embedding and from activations. The later weights can
# tell the rest of the story without running the model at all. Each MLP neuron `n` adds its
# output weight row `W_out[n]` to the residual stream, scaled by its activation; the final
# LayerNorm and the unembedding turn that row into a vector of answer logits — a function of
# the candidate answer `c`. If the model adds with waves, a neuron that *reads* frequency `k`
# (section 4 found each neuron's best frequency from its activations) should *write*
# frequency `k`: its effect on the logits should be a wave over `c` at that same frequency.
#
# ## Exercise 5.8 — which frequency does each neuron write?
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪ · about 25 minutes
#
# The weights live on the Hugging Face modules: `model.model.transformer.h[0].mlp.c_proj.weight`
# is `W_out`, shape `(d_mlp, d_model)` (GPT-2's `Conv1D` stores its weight input-major),
# `model.norm_module()` is the final LayerNorm, and `model.W_U` is the unembedding
# `(d_model, d_vocab)`, whose first `p` columns are the numbers.


# %%
def neuron_logit_spectrum(model, p: int, basis: torch.Tensor) -> torch.Tensor:
    """How much each MLP neuron writes to the answer logits at each frequency, from the weights alone.

    model: the hooked 1-layer modular-addition GPT-2; basis: fourier_basis(p), (p, p).
    A neuron's direct effect on the number logits is its W_out row passed through the final
    LayerNorm's centring and weight (not its per-input scale, nor its bias) and the unembedding's
    first p columns: a function of the answer c, shape (p,).
    Returns (n_freq, d_mlp) float32, n_freq = (p-1)/2: entry [k-1, n] is the squared norm of
    frequency k (its cos and sin components together) in neuron n's function of c.
    Reads no activations; changes nothing.
    """
    # BEGIN SOLUTION
    W_out = model.model.transformer.h[0].mlp.c_proj.weight.detach().float()  # (d_mlp, d_model)
    W_out = W_out - W_out.mean(dim=1, keepdim=True)  # the LayerNorm's centring
    W_out = W_out * model.norm_module().weight.detach().float()  # and its weight
    neuron_logits = W_out @ model.W_U[:, :p].detach().float()  # (d_mlp, p): a function of c per neuron
    sq = (basis.float() @ neuron_logits.T).pow(2)[1:]  # (p - 1, d_mlp), constant dropped
    return sq[0::2] + sq[1::2]  # (n_freq, d_mlp): cos k + sin k
    # END SOLUTION


ch05.check_neuron_logit_spectrum(neuron_logit_spectrum)

# %% [markdown]
# <details><summary>Hint 1: the plan</summary>
#
# First build the neuron-to-logit map, one row per neuron, `(d_mlp, p)`. Then treat each row
# as a function of `c` and take its spectrum, exactly as you did for the embedding (but along
# `c`, so transpose first).
# </details>
#
# <details><summary>Hint 2: the LayerNorm</summary>
#
# A LayerNorm subtracts the mean over `d_model`, divides by a per-input scale and multiplies
# by its weight. The centring and the weight are linear, so apply them to `W_out`'s rows
# directly (`W - W.mean(dim=1, keepdim=True)`, then `* ln.weight`). The scale is the same
# number for every neuron on one input, so it changes no neuron's frequencies.
# </details>
#
# <details><summary>Hint 3: the spectrum</summary>
#
# `basis @ neuron_logits.T` is `(p, d_mlp)`. Square it, drop row 0, and add the cos and sin
# rows of each frequency: `sq[0::2] + sq[1::2]` once the constant is gone (row `i` of the
# result is frequency `i + 1`).
# </details>
#
# Below, every neuron's output spectrum, neurons sorted by the frequency they write. You
# should see a staircase of bright blocks: groups of neurons that write one frequency each,
# the cleanest neurons with little anywhere else.

# %%
spectrum = neuron_logit_spectrum(model, p, basis)  # (n_freq, d_mlp)
out_share, out_freq = (spectrum / spectrum.sum(dim=0, keepdim=True)).max(dim=0)
out_freq = out_freq + 1  # the frequency each neuron writes most
key_rows = torch.tensor(key_freqs) - 1
key_share = spectrum[key_rows].sum() / spectrum.sum()
clean = neuron_frac > 0.5  # neurons whose activations are mostly one frequency (section 4)
agree = (out_freq[clean] == neuron_freq[clean].to(out_freq.device)).float().mean()
print(f"{key_share:.0%} of the neuron-to-logit map lies in the {len(key_freqs)} key frequencies")
print(f"{(out_share > 0.5).float().mean():.0%} of neurons write more than half of their logit effect at one frequency")
print(f"of the {int(clean.sum())} neurons that read mostly one frequency, {agree:.0%} write that same frequency")
claim("ch05.logit_map_key_share", 100 * key_share)
claim("ch05.uniform_key_share", 100 * len(key_freqs) / len(all_freqs))
claim("ch05.neurons_write_one", 100 * (out_share > 0.5).float().mean())
claim("ch05.clean_neurons", int(clean.sum()))
claim("ch05.read_write_agree", 100 * agree)
claim("ch05.neurons_write_key", 100 * torch.isin(out_freq.cpu(), torch.tensor(key_freqs)).float().mean())
order = torch.argsort(out_freq.cpu() * 2 - out_share.cpu(), stable=True)  # by frequency, cleanest first
plot.imshow(
    spectrum[:, order].sqrt().cpu(),
    y=list(range(1, p // 2 + 1)),
    title="Each neuron's effect on the logits, per frequency (neurons sorted by the frequency they write)",
    xlabel="neuron (sorted)",
    ylabel="frequency k",
)

# %% [markdown]
# The key frequencies are {{claim:ch05.uniform_key_share=18%}} of the frequencies but hold {{claim:ch05.logit_map_key_share=42%}} of the
# neuron-to-logit map's squared norm — a strong preference, not a monopoly, like everything else
# in this not-quite-cleaned-up organism. {{claim:ch05.neurons_write_key=46%}} of the neurons write most at a key frequency, and
# only {{claim:ch05.neurons_write_one=26%}} write more than half of their effect at a single frequency. But where a neuron is clean, the read and the write
# match: of the {{claim:ch05.clean_neurons=151}} neurons whose activations are mostly one frequency, {{claim:ch05.read_write_agree=100%}} write that same
# frequency to the logits. That is the algorithm's last step, read from the weights: clusters
# of neurons, one cluster per frequency, turn products of waves in `a` and `b` into
# `cos(w(a + b − c))` over the answers. (We read only the MLP's direct path here; the
# attention's part — moving `a` and `b` to the `=` position — we took on trust.)
#
# ## 8. Progress measures: watching the circuit form
#
# Test loss tells you *when* a model generalises, not *how*. Nanda et al. (2023) turned the
# algorithm found in the final model into **progress measures** and tracked them over
# training. Write the logits as a function of the input `(a, b)`, one function for each
# answer `c`. The term `cos(w(a + b − c)) = cos(w(a + b))·cos(wc) + sin(w(a + b))·sin(wc)`
# lies, for every `c`, in the span of two directions over the inputs: `cos(w(a + b))` and
# `sin(w(a + b))`. So, with `w` running over the key frequencies of the final model:
#
# - **restricted loss**: keep only the logits' components along those directions (plus each
#   answer's mean over all inputs) and measure the loss on all `p²` pairs. It is low only once
#   the Fourier circuit alone can do the task.
# - **excluded loss**: remove exactly those components and measure the loss on the
#   *training* pairs. While memorisation carries the training set it stays low relative to
#   the train loss; once the training set relies on the circuit, it rises relative to the train
#   loss (the raw value can still fall, as the train loss falls faster).
#
# The organism ships with its weights at a few steps of its training: just after memorising,
# on the plateau, while test accuracy climbs, right after grokking, and the final model.
#
# ## Exercise 5.9 — restricted and excluded loss
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵🔵 · about 30 minutes


# %%
def progress_losses(
    logits: torch.Tensor, key_freqs: list[int], train_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The restricted and excluded loss of a modular-addition model, from its logits on every input.

    logits: (p*p, p) float, the logits over the answers c at "=" for every pair (a, b), a-major
    (row a*p + b, the order of all_pairs(p)); the label of row a*p + b is (a + b) mod p.
    key_freqs: frequencies k in 1 .. (p-1)/2. train_idx: (n_train,) long, the training rows.
    Returns (restricted, excluded), two 0-d float32 tensors, mean cross-entropies:
      restricted, on all p*p rows, of the logits reduced to their component (for every c, over the
      p*p inputs) in the span of the constant and of cos(w(a + b)), sin(w(a + b)) for the key
      frequencies w = 2 pi k / p;
      excluded, on the training rows only, of the logits minus their component in the span of the
      key-frequency directions (constant not included).
    Changes nothing in place.
    """
    # BEGIN SOLUTION
    p = logits.shape[-1]
    x = torch.arange(p, dtype=torch.float64)
    a, b = x.repeat_interleave(p), x.repeat(p)  # a-major, like all_pairs
    labels = ((a + b) % p).long()
    directions = []
    for k in key_freqs:
        angle = 2 * torch.pi * k * (a + b) / p
        directions += [torch.cos(angle), torch.sin(angle)]
    D = torch.stack(directions)  # (2 n_key, p*p), orthogonal rows
    D = D / D.norm(dim=1, keepdim=True)
    L = logits.double()
    key_part = D.T @ (D @ L)  # (p*p, p): the key-frequency components, for every answer c
    restricted = F.cross_entropy((L.mean(dim=0, keepdim=True) + key_part).float(), labels)
    excluded = F.cross_entropy((L - key_part)[train_idx].float(), labels[train_idx])
    return restricted, excluded
    # END SOLUTION


ch05.check_progress_losses(progress_losses)

# %% [markdown]
# <details><summary>Hint 1: the directions</summary>
#
# For each key frequency build two vectors over the `p²` inputs, `cos(w(a + b))` and
# `sin(w(a + b))`, with `a` and `b` in a-major order (`a = x.repeat_interleave(p)`,
# `b = x.repeat(p)` for `x = torch.arange(p)`), and normalise each to unit length. Directions
# of different frequencies are orthogonal to each other and to the constant, so projecting
# onto their span is one matrix product.
# </details>
#
# <details><summary>Hint 2: the projection</summary>
#
# Stack the directions as the rows of `D`, `(2·n_key, p²)`. Then `D.T @ (D @ logits)` is the
# key-frequency part of the logits, `(p², p)`, for every answer at once. The restricted logits
# are `logits.mean(dim=0, keepdim=True)` plus that part; the excluded logits are `logits`
# minus it, at the training rows only. The labels are `(a + b) % p`; `F.cross_entropy` does
# the rest. Work in float64 if your values differ from the reference in the fifth digit.
# </details>
#
# Now run it on every shipped checkpoint. `fourier.progress_measures` computes your two losses
# with the package's copy of `progress_losses`, next to train and test loss and the weight
# norm. The key frequencies are the final model's (section 3), for every checkpoint.

# %%
train_idx = fourier.train_rows(train_x, p)
steps = fourier.checkpoint_steps("modadd")
measures = []
for step in steps:
    m = fourier.progress_measures(fourier.load_checkpoint(step, device=device), p, key_freqs, train_idx)
    measures.append(m)
    print(f"step {step:>5}: " + "  ".join(f"{k} {v:.4g}" for k, v in m.items()))
mine = progress_losses(model(all_pairs(p)[0])[:, -1, :p].float().cpu(), key_freqs, train_idx)
print(f"your losses on the final model: restricted {mine[0]:.4g}, excluded {mine[1]:.4g}")
by_step = dict(zip(steps, measures))
before = [m for s, m in by_step.items() if s < generalised]  # checkpoints before test accuracy passes 99%
mid = steps[len(steps) // 2 - 1]  # a checkpoint in the middle of the climb
claim("ch05.pm_n_before", len(before))
claim("ch05.pm_restricted_below", sum(m["restricted_loss"] < m["test_loss"] for m in before))
claim("ch05.pm_mid_step", mid)
claim("ch05.pm_mid_restricted", by_step[mid]["restricted_loss"])
claim("ch05.pm_mid_test", by_step[mid]["test_loss"])
claim("ch05.pm_first_step", steps[0])
claim("ch05.pm_ratio_first", measures[0]["excluded_loss"] / measures[0]["train_loss"])
claim("ch05.pm_ratio_mid", by_step[steps[3]]["excluded_loss"] / by_step[steps[3]]["train_loss"])
claim("ch05.pm_ratio_mid_step", steps[3])
norms = [m["weight_norm"] for m in measures]
claim("ch05.pm_norm_min", min(norms))
claim("ch05.pm_norm_max", max(norms))
claim("ch05.pm_norm_max_step", steps[norms.index(max(norms))])
late = [r for r in records if r["step"] > generalised]
spike = max(late, key=lambda r: r["train_loss"])
claim("ch05.pm_spike_step", spike["step"])
fourier.progress_figure(steps, measures, title="Progress measures over the organism's training")

# %% [markdown]
# What you should see. Train loss is low from the first checkpoint on: step
# {{claim:ch05.pm_first_step=100}} is just after memorisation. The rest is read in the other curves.
#
# - **Restricted loss runs below test loss** at {{claim:ch05.pm_restricted_below=5}} of the {{claim:ch05.pm_n_before=5}} checkpoints before test
#   accuracy passes 99% — at step {{claim:ch05.pm_mid_step=700}}, {{claim:ch05.pm_mid_restricted=0.86±0.05}} against {{claim:ch05.pm_mid_test=1.36±0.05}}. Keeping *only* the
#   key-frequency part of the logits gives better answers on unseen pairs than the whole model
#   does: the general circuit is there, growing, under a memorised solution that still spoils the
#   test pairs.
# - **Excluded loss grows relative to train loss.** At step 100, removing the key frequencies
#   multiplies the training loss by {{claim:ch05.pm_ratio_first=2.3±0.3}}; at step {{claim:ch05.pm_ratio_mid_step=1000}}, by {{claim:ch05.pm_ratio_mid=150–300}}. The model fits
#   even its *training* pairs more and more through the key frequencies, and less and less by
#   memorisation.
# - **The weight norm does not tell Nanda et al.'s story here.** In their model it falls through
#   circuit formation and clean-up. In ours it dips to {{claim:ch05.pm_norm_min=20.8±0.2}}, then *grows* to {{claim:ch05.pm_norm_max=29.0±0.2}} at
#   step {{claim:ch05.pm_norm_max_step=1600}} while test loss falls, and only shrinks after a spike of the training loss near step
#   {{claim:ch05.pm_spike_step=1650±50}} (look at the history). This short run — about two thousand steps, with LayerNorm
#   and AdamW — is not a copy of theirs, and we report what it does rather than the textbook
#   curve.
#
# Two caveats. The key frequencies are the *final* model's, so the measures ask "how much of the
# final algorithm is there yet"; a model that grew a different circuit first would look
# unfinished. And the checkpoints are stored in half precision: their losses differ from the
# training run's in the third digit, and these losses use the `p` number logits only, so they
# differ slightly from `history.json`.
#
# ## 9. Watch a smaller model grok — and break it with one frequency
#
# A smaller instance — `p = 31`, `d_model = 32`, a larger learning rate — groks in a few
# hundred steps (this run: test accuracy passes 99% at step {{claim:ch05.small_grok_step=100–1000}}), seconds on a CPU. `fourier.train_grokking` uses the organism's recipe
# (1-layer GPT-2, ReLU MLP, AdamW with weight decay 1.0, full batch) and stops shortly after
# test accuracy reaches 100%. Then we run the same analysis on it. Set `LIVE_RUN = False` to
# skip it.

# %%
LIVE_RUN = True
if LIVE_RUN:
    run = fourier.train_grokking(p=31, steps=1500, seed=0)
    print(f"train accuracy ≥ 99% at step {run.memorised_at()}; test accuracy ≥ 99% at step {run.grokked_at()}")
    claim("ch05.small_grok_step", run.grokked_at())
    fourier.grokking_figure(run.history, title="A p = 31 model groks, live").show()
else:
    print("Skipping the live run.")

# %% [markdown]
# Its spectrum has a few clean spikes. Take the frequencies above a quarter of the tallest as
# key, keep only them, then remove each one alone.

# %%
if LIVE_RUN:
    small, small_p = wrap(run.model), run.p
    small_basis = fourier_basis(small_p)
    small_W_E = small.W_E[:small_p].detach()
    small_norms = fourier.frequency_norms(project_onto_basis(small_W_E, small_basis))
    small_key = key_frequencies(
        project_onto_basis(small_W_E, small_basis), int((small_norms > small_norms.max() / 4).sum())
    )
    small_non_key = [k for k in range(1, small_p // 2 + 1) if k not in small_key]
    print(f"key frequencies of the small model: {small_key}")
    print(f"original: {fourier.evaluate_all_pairs(small, small_p)['accuracy']:.1%}")
    only = fourier.evaluate_all_pairs(small, small_p, ablate_frequencies(small_W_E, small_basis, small_non_key))
    print(f"only key frequencies: {only['accuracy']:.1%}")
    claim("ch05.small_n_key", len(small_key))
    claim("ch05.small_only_key", 100 * only["accuracy"])
    for k in small_key:
        r = fourier.evaluate_all_pairs(small, small_p, ablate_frequencies(small_W_E, small_basis, [k]))
        print(f"without key frequency {k}: {r['accuracy']:.1%}")
        claim("ch05.small_without_one", 100 * r["accuracy"])
    plot.line(
        small_norms,
        x=list(range(1, small_p // 2 + 1)),
        title="The small model's embedding norm per frequency",
        xlabel="frequency k",
        ylabel="norm",
    ).show()

# %% [markdown]
# {{claim:ch05.small_n_key=3}} frequencies, and each one is load-bearing: keep only them and the model still gets
# {{claim:ch05.small_only_key=99.8%±0.5%}} right; remove any one and accuracy falls to {{claim:ch05.small_without_one=35–65%}}. Same architecture,
# same recipe, same algorithm — a sparser version of it.

# ## 10. Try it on GPT-2
#
# Do real language models use waves for numbers too? Zhou et al. (2024) found that the
# embeddings of number tokens in pre-trained models have strong Fourier components with
# periods 2, 5 and 10. GPT-2 has a single token for every number from 0 to 99 (with a leading
# space); project those 100 embeddings onto a Fourier basis with `p = 100` (frequency `k`
# means period `100 / k`).

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    ids = [gpt2.tokenizer.encode(f" {n}")[0] for n in range(100)]
    gpt2_fourier = project_onto_basis(gpt2.W_E[ids].detach(), fourier.fourier_basis(100).to(device))
    norms_100 = fourier.frequency_norms(gpt2_fourier)
    top = fourier.key_frequencies(gpt2_fourier, 4)
    print("GPT-2's strongest number frequencies:", {k: f"period {100 / k:g}" for k in top})
    plot.line(
        norms_100,
        x=list(range(1, 51)),
        title="GPT-2 number embeddings: norm per frequency (p = 100)",
        xlabel="frequency k (period 100/k)",
        ylabel="norm",
    ).show()
else:
    print("Offline: skipping GPT-2.")

# %% [markdown]
# ## Summary
#
# - The model memorised first and generalised more than a thousand steps later: grokking. Its
#   test-accuracy plateau is memorisation plus commutativity, not early generalisation.
# - Its embedding lives on a set of key frequencies: each number becomes points on circles.
# - MLP neurons are 2-D waves in `(a, b)`.
# - The logits are, to a good approximation, a sum of `cos(w(a + b − c))`, peaked at the answer.
# - Keep only the key frequencies in the embedding and the model still works; remove them there
#   and it loses a third of its accuracy; remove them from the logits too and it still gets most sums
#   right: this organism's solution is spread over many frequencies, redundant to losing one or
#   even all of the strongest. A cleaned-up model with few frequencies is not.
# - The weights say the same without running the model: neurons that read one frequency write
#   that frequency to the logits.
# - Progress measures built from the final algorithm — restricted and excluded loss — show it
#   forming during training, long before test accuracy jumps.
#
# Chapter 6 trains probes and compares the circuits of two architectures.
