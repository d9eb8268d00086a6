# %% [markdown]
# # Chapter 6 — Probes and comparing models
#
# Two questions every newcomer to interpretability wants to ask. First: *what does the model
# know, and where?* A **linear probe** — a logistic regression trained on the residual stream —
# answers "is this property linearly readable here?". Probes are cheap and seductive, so we
# will also learn to distrust them: a probe can memorise, it can read a property the model
# never uses, and its accuracy depends on *where* you put it. Second: *do different models
# learn the same thing?* Our toy language was learned by two organisms with different
# architectures (GPT-2 and Llama); we look for the same circuits in both and see what
# transfers.
#
# **Goals**
# - Read the residual stream at a chosen position at every layer, and train logistic-regression
#   probes on it in plain PyTorch.
# - Find where the model represents "what kind of thing is this?" (persons, places, animals; the
#   is-a categories) and "is this statement true?" — a tiny deception-detection exercise.
# - Catch a probe that memorises, with a **control task** and **selectivity** (Hewitt & Liang).
# - Test a probe direction causally: ablate it and steer along it, against a random baseline.
# - Compare a difference-of-means direction with a logistic-regression one, by what the model
#   does when you push along each; see the same contrast in its principal components.
# - Build contrast-consistent search, an unsupervised probe, and watch it fail in the ways the
#   literature predicts (optional).
# - Compare the induction and indirect-object circuits of two architectures: where the heads
#   are, how strong they are, and how alike they attend.
#
# **Prerequisites:** chapter 1 (hooks, `run_with_cache`, induction heads) and chapter 3
# (activation patching, the logit difference). Logistic regression and cross-entropy.
#
# **Time:** about 3½ hours (3 without the optional section 8).
#
# **Readings**
# - Alain & Bengio, [*Understanding intermediate layers using linear classifier probes*](https://arxiv.org/abs/1610.01644) (2016) —
#   the linear probe.
# - Hewitt & Liang, [*Designing and Interpreting Probes with Control Tasks*](https://arxiv.org/abs/1909.03368) (2019) —
#   control tasks and selectivity.
# - Belinkov, [*Probing Classifiers: Promises, Shortcomings, and Advances*](https://arxiv.org/abs/2102.12452) (2021) —
#   what a probe can and cannot tell you.
# - Marks & Tegmark, [*The Geometry of Truth: Emergent Linear Structure in Large Language Model Representations of True/False Datasets*](https://arxiv.org/abs/2310.06824) (2023) —
#   truth probes, their generalisation across datasets, and causal interventions along them.
# - Burns et al., [*Discovering Latent Knowledge in Language Models Without Supervision*](https://arxiv.org/abs/2212.03827) (2022) —
#   finding a truth direction with no labels at all (contrast-consistent search).
# - Farquhar et al., [*Challenges with unsupervised LLM knowledge discovery*](https://arxiv.org/abs/2312.10029) (2023) —
#   why that search can find a salient feature that is not truth.
# - Olsson et al., [*In-context Learning and Induction Heads*](https://arxiv.org/abs/2209.11895) (2022) and
#   Wang et al., [*Interpretability in the Wild*](https://arxiv.org/abs/2211.00593) (2022) — the two circuits we compare.
# - Chughtai, Chan & Nanda, [*A Toy Model of Universality*](https://arxiv.org/abs/2302.03025) (2023) —
#   do models trained on the same task learn the same algorithm?

# %%
from functools import partial

import torch

from digsite import induction, load_model, plot
from digsite import probes as P
from digsite.checks import ch06
from digsite.claims import claim
from digsite.linear_probe import CCSProbe, LinearProbe
from digsite.notebook import online, setup
from digsite.organisms import data
from digsite.patching import logit_diff

device = setup(seed=0)
if device.type == "cpu":
    torch.set_num_threads(1)  # for 128-wide models and probes, one thread is several times faster than two
model = load_model("toylang", device=device)
n_layers = model.cfg.n_layers
print(model)

# %% [markdown]
# ## 1. Where does the model keep "what kind of thing"?
#
# The toy language contains facts like "a cat is an animal" and "a harp is an instrument":
# 75 subjects in 7 categories. To predict the category word, the model must recognise the
# subject and move what it knows about it to the last position. Let us watch that happen with
# probes.
#
# Each prompt is an is-a fact with its answer cut off, after a random sentence of the toy
# language (so every subject is seen in several contexts). The subject is always two tokens
# before the end: "... a **cat** is an".

# %%
isa = P.isa_prompts(n_contexts=4, seed=0)
categories = sorted(data.CATEGORIES)
isa_texts = [text for text, _, _ in isa]
isa_subjects = [subject for _, subject, _ in isa]
isa_y = torch.tensor([categories.index(cat) for _, _, cat in isa])
isa_tokens = model.to_tokens(isa_texts)
isa_last = P.last_positions(isa_tokens, model.tokenizer.pad_token_id)
category_ids = model.to_tokens(categories, prepend_bos=False)[:, 0]

rows = torch.arange(len(isa))
with torch.no_grad():
    isa_logits = model(isa_tokens)[rows, isa_last][:, category_ids]
print(len(isa), "prompts, e.g.", repr(isa_texts[0]))
print("categories:", categories)
print(
    f"the model names the right category (among the 7) in {(isa_logits.argmax(-1).cpu() == isa_y).float().mean():.0%} of prompts"
)

# %% [markdown]
# (If transformers warns about an `attention_mask`: the batch is padded on the *right* and
# attention is causal, so no real token ever sees the padding — the warning is harmless here.)

# %% [markdown]
# ## Exercise 6.1 — the residual stream at one position, at every layer
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# A probe reads one vector per example. We want the residual stream at a chosen position of
# each prompt (the subject, or the last token), at every layer boundary: the input of each
# block (`blocks.{l}.hook_resid_pre`; layer 0 is the embedding) and the output of the last
# block (`blocks.{n_layers-1}.hook_resid_post`) — `n_layers + 1` vectors per prompt.
#
# Careful: the prompts have different lengths, so the batch is right-padded. "The last token"
# is *not* column `-1` for the shorter prompts — that is padding.


# %%
def residuals_at(model, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The residual stream at one position per prompt, at every layer boundary.

    tokens: (batch, pos) token ids; positions: (batch,) the position to read in each prompt.
    Returns (n_layers + 1, batch, d_model): index l < n_layers is blocks.l.hook_resid_pre,
    index n_layers is the last block's hook_resid_post.
    """
    # BEGIN SOLUTION
    L = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    batch_rows = torch.arange(tokens.shape[0], device=tokens.device)
    return torch.stack([cache[name][batch_rows, positions.to(tokens.device)] for name in names])
    # END SOLUTION


ch06.check_residuals_at(residuals_at)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `model.run_with_cache(tokens, names_filter=names)` caches only the names you list. Index each
# cached `(batch, pos, d_model)` tensor with two index tensors, `cache[name][rows, positions]`
# with `rows = torch.arange(batch)`, to get `(batch, d_model)`; then `torch.stack` the layers.
# </details>
#
# Now collect the residuals at the **last token** (where the category must be predicted) and
# at the **subject**, for all prompts.

# %%
X_last = residuals_at(model, isa_tokens, isa_last).cpu()
X_subject = residuals_at(model, isa_tokens, isa_last - 2).cpu()
print("X_last:", tuple(X_last.shape), " X_subject:", tuple(X_subject.shape), " (layer, prompt, d_model)")
print("mean residual norm by layer:", [round(v, 1) for v in X_last.norm(dim=-1).mean(1).tolist()])

# %% [markdown]
# ## Exercise 6.2 — a logistic-regression probe in PyTorch
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# A probe is a linear map from the residual stream to one logit per class, with a bias, trained
# with cross-entropy: multinomial logistic regression. No scikit-learn needed — twenty lines of
# PyTorch. Train full-batch with Adam from zero weights (so the result is deterministic), and
# add a small L2 penalty on the weights (not the bias) so that they stay finite when the classes
# are separable. Return a `LinearProbe(W, b)`: it has `.logits(X)`, `.predict(X)`,
# `.accuracy(X, y)` and `.direction(cls)`.


# %%
def train_probe(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int | None = None,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 1e-3,
) -> LinearProbe:
    """Multinomial logistic regression: full batch, Adam, from zero weights.

    X: (n, d_model) features; y: (n,) labels in 0..n_classes-1 (default: y.max() + 1 classes).
    Takes `steps` Adam steps at `lr` on the mean cross-entropy of the logits X @ W + b plus
    `weight_decay` times the sum of squares of W (b is not penalised).
    Returns LinearProbe(W (d_model, n_classes), b (n_classes,)), detached.
    """
    # BEGIN SOLUTION
    X = X.detach().float()
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(X @ W + b, y) + weight_decay * W.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return LinearProbe(W.detach(), b.detach())
    # END SOLUTION


ch06.check_train_probe(train_probe)

# %% [markdown]
# <details><summary>Hint 1 — the loss</summary>
#
# `torch.nn.functional.cross_entropy(X @ W + b, y) + weight_decay * W.pow(2).sum()`.
# </details>
#
# <details><summary>Hint 2 — the loop</summary>
#
# `W = torch.zeros(d, n_classes, requires_grad=True)`, the same for `b`; `opt = torch.optim.Adam([W, b], lr=lr)`;
# then `steps` times: compute the loss with `torch.nn.functional.cross_entropy(X @ W + b, y)`
# plus the penalty, `opt.zero_grad()`, `loss.backward()`, `opt.step()`. Return
# `LinearProbe(W.detach(), b.detach())`.
# </details>
#
# A first probe: hold out 30% of the prompts, train at the last token after block 1 (boundary
# 2), and compare accuracy on the training and on the held-out prompts.

# %%
train_idx, test_idx = P.split_indices(len(isa), test_frac=0.3, seed=0)
probe = train_probe(X_last[2, train_idx], isa_y[train_idx], len(categories))
print(
    f"layer 2, last token: train accuracy {probe.accuracy(X_last[2, train_idx], isa_y[train_idx]):.2f}, "
    f"held-out accuracy {probe.accuracy(X_last[2, test_idx], isa_y[test_idx]):.2f} (chance {1 / len(categories):.2f})"
)

# %% [markdown]
# ## 2. Is it the model, or the probe? Control tasks
#
# High accuracy says a property is *linearly decodable* — not that the model computed it.
# Two traps:
#
# - **Accuracy on the training set.** A probe with 128 inputs and a few hundred examples can
#   fit almost any labelling. Only held-out accuracy counts.
# - **Memorisation through identity.** Our held-out prompts reuse the same 75 subjects in new
#   contexts. A probe that can read *which word* the subject is can learn "cat → animal" as a
#   lookup table, without the model representing categories at all.
#
# Hewitt & Liang's answer is a **control task**: give every word type a *random* label, train
# the same probe on the same vectors, and score it on held-out examples. A control probe can
# only succeed by memorising types, so its accuracy measures how much the probe can memorise
# here. The **selectivity** is task accuracy minus control accuracy: high when the real labels
# are far easier to read than arbitrary ones.
#
# ## Exercise 6.3 — control-task labels
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# One random label per distinct type, shared by all its examples, balanced over the types
# (each label goes to the same number of types, ±1), drawn from a generator seeded by `seed`.


# %%
def control_labels(types: list[str], n_classes: int, seed: int = 0) -> torch.Tensor:
    """A control task: every distinct type gets one random label, the same for all its examples.

    types: one string per example (its subject word, say). Labels are balanced over the types
    and depend on `seed`. Returns (n,) long.
    """
    # BEGIN SOLUTION
    distinct = sorted(set(types))
    g = torch.Generator().manual_seed(seed)
    table = torch.randperm(len(distinct), generator=g) % n_classes
    label = {t: int(table[i]) for i, t in enumerate(distinct)}
    return torch.tensor([label[t] for t in types], dtype=torch.long)
    # END SOLUTION


ch06.check_control_labels(control_labels)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `sorted(set(types))` lists the types in a fixed order. `torch.randperm(n_types, generator=g) % n_classes`
# is a balanced random labelling of them. Then map every example through a dict type → label.
# </details>
#
# ## Exercise 6.4 — task accuracy, control accuracy and selectivity by layer
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 15 minutes
#
# For every layer: train a task probe and a control probe on the training examples, score
# both on the **held-out** examples, and return `{"task": (L,), "control": (L,), "selectivity": (L,)}`
# with selectivity = task − control. Pass `**train_kwargs` on to `train_probe`.


# %%
def probe_scores(
    X: torch.Tensor,
    y: torch.Tensor,
    y_control: torch.Tensor,
    train_idx: torch.Tensor,
    test_idx: torch.Tensor,
    **train_kwargs,
) -> dict[str, torch.Tensor]:
    """Held-out accuracy of a task probe and a control probe at every layer, and the selectivity.

    X: (n_layers + 1, n, d_model); y, y_control: (n,) labels; train_idx, test_idx: (k,) indices.
    Returns {"task": (L,), "control": (L,), "selectivity": (L,)}, selectivity = task - control.
    """
    # BEGIN SOLUTION
    task, control = [], []
    for layer in range(X.shape[0]):
        Xtr, Xte = X[layer, train_idx], X[layer, test_idx]
        task_probe = train_probe(Xtr, y[train_idx], int(y.max()) + 1, **train_kwargs)
        control_probe = train_probe(Xtr, y_control[train_idx], int(y_control.max()) + 1, **train_kwargs)
        task.append(task_probe.accuracy(Xte, y[test_idx]))
        control.append(control_probe.accuracy(Xte, y_control[test_idx]))
    task_t, control_t = torch.tensor(task), torch.tensor(control)
    return {"task": task_t, "control": control_t, "selectivity": task_t - control_t}
    # END SOLUTION


ch06.check_probe_scores(probe_scores)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Loop over `X.shape[0]` layers; `X[layer, train_idx]` is that layer's training matrix. Train with
# `train_probe(Xtr, y[train_idx], ...)`, score with `probe.accuracy(X[layer, test_idx], y[test_idx])`.
# Return tensors (`torch.tensor(list_of_floats)`).
# </details>
#
# Now the real thing: is-a probes at the last token and at the subject, with control labels
# drawn per subject word.

# %%
isa_control = control_labels(isa_subjects, len(categories), seed=0)
isa_scores = {
    "last token": probe_scores(X_last, isa_y, isa_control, train_idx, test_idx),
    "subject": probe_scores(X_subject, isa_y, isa_control, train_idx, test_idx),
}
for where, s in isa_scores.items():
    for key in ("task", "control", "selectivity"):
        print(f"{where:>10} {key:>11}:", " ".join(f"{v:5.2f}" for v in s[key].tolist()))
last, subject = isa_scores["last token"], isa_scores["subject"]
claim("ch06.isa_last_0", last["task"][0])
claim("ch06.isa_last_1", last["task"][1])
claim("ch06.isa_last_from_2", last["task"][2:].min())
claim("ch06.isa_control_out", last["control"][-1])
claim("ch06.isa_selectivity_2", last["selectivity"][2])
claim("ch06.isa_selectivity_out", last["selectivity"][-1])
claim("ch06.isa_subject_task", subject["task"].min())
claim("ch06.isa_subject_control", subject["control"].max())

# %%
plot.line(
    {f"{where}: {key}": s[key] for where, s in isa_scores.items() for key in ("task", "control")},
    x=list(range(n_layers + 1)),
    title="Is-a probes: held-out accuracy by layer (chance 0.14)",
    xlabel="layer boundary (0 = embedding)",
    ylabel="accuracy",
)

# %% [markdown]
# What to see:
#
# - **At the last token** the category is absent from the embedding (layer 0: only the article
#   "a"/"an" is there, which separates animals and instruments from the rest — {{claim:ch06.isa_last_0=0.33}}), arrives
#   after block 0 ({{claim:ch06.isa_last_1=0.85}}) and is perfect from boundary 2 on ({{claim:ch06.isa_last_from_2=1.00}}). The control probe stays low until
#   boundary 3, then climbs to {{claim:ch06.isa_control_out=0.92}} at the output: by then the last token also carries *which*
#   subject it is. Selectivity peaks at boundary 2 ({{claim:ch06.isa_selectivity_2=0.65}}) — the cleanest place to read the
#   category — and falls to {{claim:ch06.isa_selectivity_out=0.08}} at the end, where a lookup table works nearly as well.
# - **At the subject** the task is trivially perfect at every layer ({{claim:ch06.isa_subject_task=1.00}}: each subject is one token,
#   and the embedding alone tells them apart), but the control probe reaches {{claim:ch06.isa_subject_control=0.68}} too:
#   high accuracy there says little about what the model computed.
#
# The lesson of Hewitt & Liang: report probe accuracy *with* a control, and prefer the place
# where selectivity is high.

# %% [markdown]
# ### Persons, places, animals — on words the probe never saw
#
# The other way to rule out a lookup table is to test on *types* the probe never saw in
# training. Take every person, place and animal word of the toy language (40 names, 40 places
# and cities, 23 animals and birds) as the last token after random sentences, hold out every
# third word (alphabetically), and train a 3-way probe on the rest. A probe that memorised
# words cannot classify a word it never saw; one that reads a "kind of thing" feature can.

# %%
kind = P.kind_prompts(n_contexts=3, seed=0)
kinds = list(P.KINDS)
kind_tokens = model.to_tokens([text for text, _, _ in kind])
kind_y = torch.tensor([kinds.index(k) for _, _, k in kind])
kind_words = [word for _, word, _ in kind]
X_kind = residuals_at(model, kind_tokens, P.last_positions(kind_tokens, model.tokenizer.pad_token_id)).cpu()
held_out_words = set(sorted(set(kind_words))[::3])
word_test = torch.tensor([word in held_out_words for word in kind_words])
kind_accuracy = [
    train_probe(X_kind[layer, ~word_test], kind_y[~word_test], len(kinds)).accuracy(
        X_kind[layer, word_test], kind_y[word_test]
    )
    for layer in range(n_layers + 1)
]
print(f"{len(held_out_words)} held-out words, e.g. {sorted(held_out_words)[:5]}")
print("person / place / animal, held-out words, by layer:", " ".join(f"{v:.2f}" for v in kind_accuracy))
claim("ch06.kind_min_accuracy", min(kind_accuracy))
claim("ch06.kind_held_out_words", len(held_out_words))

# %% [markdown]
# What to see: {{claim:ch06.kind_min_accuracy=1.00}} at every layer, the embedding included, on {{claim:ch06.kind_held_out_words=35}} words the probe never saw.
# The model's embedding already groups names, places and animals (they are followed by the
# same kinds of words in training), so "what kind of thing" is a real linear feature here, not
# a lookup table. Contrast the is-a categories at the last token, which only appear there
# after attention has moved them from the subject.

# %% [markdown]
# ## 3. Can a probe tell true from false?
#
# Marks & Tegmark found that large models represent the truth of simple factual statements
# along a linear direction, one that generalises across kinds of facts and that steers the
# model's behaviour; Burns et al. found such a direction with no labels at all. Our toy model
# only ever saw true facts in training, so a false statement ("a cat is a fruit") is simply
# *surprising* to it. Is there a linearly readable "this is false" signal at the end of a
# statement? A tiny deception-detection exercise: if the model "knows" a statement is false,
# a probe on its activations should see it.
#
# Every fact appears true and with a random wrong object, after random context sentences;
# we probe the statement's last token (the object), and the control task gives every
# statement (as a string) a random label.

# %%
truth = P.truth_statements(n_contexts=5, seed=0)
truth_tokens = model.to_tokens([text for text, _, _ in truth])
truth_last = P.last_positions(truth_tokens, model.tokenizer.pad_token_id)
truth_y = torch.tensor([int(is_true) for _, _, is_true in truth])
truth_statements = [statement for _, statement, _ in truth]
print(len(truth), "statements, e.g.", [t for t, _, _ in truth[:2]])

X_truth = residuals_at(model, truth_tokens, truth_last).cpu()
truth_control = control_labels(truth_statements, 2, seed=0)
truth_train, truth_test = P.split_indices(len(truth), test_frac=0.3, seed=0)
truth_scores = probe_scores(X_truth, truth_y, truth_control, truth_train, truth_test)
for key in ("task", "control", "selectivity"):
    print(f"truth {key:>11}:", " ".join(f"{v:5.2f}" for v in truth_scores[key].tolist()))
claim("ch06.truth_0", truth_scores["task"][0])
claim("ch06.truth_3", truth_scores["task"][3])
claim("ch06.truth_out", truth_scores["task"][-1])
claim("ch06.truth_control", truth_scores["control"][-2:].mean())
claim("ch06.truth_selectivity", truth_scores["selectivity"][-2])
claim("ch06.truth_selectivity", truth_scores["selectivity"][-1])

# %%
plot.line(
    {key: truth_scores[key] for key in ("task", "control")},
    x=list(range(n_layers + 1)),
    title="True vs false statements: held-out probe accuracy by layer (chance 0.5)",
    xlabel="layer boundary (0 = embedding)",
    ylabel="accuracy",
)

# %% [markdown]
# What to see: at the embedding the probe is at chance ({{claim:ch06.truth_0=0.49}} — the object word alone cannot
# say whether the statement is true), and truth becomes readable only after the blocks have
# combined subject and object: {{claim:ch06.truth_3=0.74}} after block 2, {{claim:ch06.truth_out=0.75}} at the output. The control probe,
# which can only memorise statements, reaches {{claim:ch06.truth_control=0.59±0.03}} there — so selectivity is {{claim:ch06.truth_selectivity=0.15±0.01}} at the
# last two layers. A real but weak signal: this model was never trained to judge truth.
#
# Marks & Tegmark's strongest evidence was **generalisation**: a direction learned on one kind
# of fact classifies another. Train on the is-a statements only and test on the city–country
# statements ("Paris is in Spain"), which the probe never saw:

# %%
is_isa = torch.tensor([" is in " not in s for s in truth_statements])
transfer = [
    train_probe(X_truth[layer, is_isa], truth_y[is_isa]).accuracy(X_truth[layer, ~is_isa], truth_y[~is_isa])
    for layer in range(n_layers + 1)
]
print("trained on is-a, tested on cities:", " ".join(f"{v:.2f}" for v in transfer))
claim("ch06.transfer_early", transfer[0])
claim("ch06.transfer_early", transfer[1])
claim("ch06.transfer_3", transfer[3])
claim("ch06.transfer_out", transfer[-1])

# %% [markdown]
# Chance at the embedding and after block 0 ({{claim:ch06.transfer_early=0.4–0.6}}), then {{claim:ch06.transfer_3=0.76}} at boundary 3 and {{claim:ch06.transfer_out=0.71}} at the output:
# the "false" signal learned on is-a facts partly carries over to facts about cities — a shared
# direction, not a list of memorised statements. In a toy model it is fragile; in large models
# it is much stronger, and Burns et al. show it can be found without labels, by asking that a
# statement and its negation get opposite answers.

# %% [markdown]
# ## 4. Does the model *use* the probe's direction?
#
# A probe finds a direction that *correlates* with a property. The model may never read it. The
# causal test: edit the residual stream along the direction and see whether the output
# changes — compared with the same edit along a random direction.
#
# ## Exercise 6.5 — projecting a direction out
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Probe weight vectors have arbitrary length. Remove the component of `resid` along
# `direction` so that what is left is orthogonal to it — whatever the direction's length.


# %%
def project_out(resid: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """resid with its component along `direction` removed.

    resid: (..., d_model); direction: (d_model,), any length. Returns (..., d_model),
    orthogonal to the direction.
    """
    # BEGIN SOLUTION
    d = direction / direction.norm()
    return resid - (resid @ d)[..., None] * d
    # END SOLUTION


ch06.check_project_out(project_out)

# %% [markdown]
# <details><summary>Hint 1 — the idea</summary>
#
# With a unit vector d̂, the component along it is `(resid · d̂) d̂`; subtract it.
# </details>
#
# <details><summary>Hint 2 — the code</summary>
#
# `d = direction / direction.norm()`; the coefficient along it is `resid @ d` of shape `(...)`;
# subtract `coefficient[..., None] * d`. Without normalising, you subtract `|direction|²` times
# too much.
# </details>
#
# ## Exercise 6.6 — a hook that ablates or steers along a direction
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write a factory that returns a hook function for a residual-stream hook point. It edits only
# the given position of each prompt: with `alpha=None` it projects the direction out; with a
# number it moves that position a distance `alpha` along the direction. It returns the edited copy.


# %%
def direction_hook(direction: torch.Tensor, positions: torch.Tensor, alpha: float | None = None):
    """A hook fn(resid (batch, pos, d_model), hook) -> edited resid, editing one position per prompt.

    direction: (d_model,), any length; positions: (batch,). alpha None: the direction is projected
    out; a number: the position moves by a vector of length alpha along the direction (negative:
    against it). Other positions, and the hook's input, are untouched.
    """
    # BEGIN SOLUTION
    d = direction / direction.norm()

    def hook(resid: torch.Tensor, hook) -> torch.Tensor:
        resid = resid.clone()
        batch_rows = torch.arange(resid.shape[0], device=resid.device)
        here = resid[batch_rows, positions]
        dd = d.to(device=resid.device, dtype=resid.dtype)
        resid[batch_rows, positions] = project_out(here, dd) if alpha is None else here + alpha * dd
        return resid

    return hook
    # END SOLUTION


ch06.check_direction_hook(direction_hook)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Inside the hook: `resid = resid.clone()`, `rows = torch.arange(resid.shape[0])`, read
# `here = resid[rows, positions]` (batch, d_model), write the edited version back into the same
# place, return `resid`. Steering adds `alpha * direction / direction.norm()`; ablating is your
# `project_out`.
# </details>
#
# **Ablation.** The is-a probe at boundary 3 (the input of the last block) reads the category
# from a 6-dimensional subspace: the span of its 7 class directions (they sum to zero, so 6
# dimensions). Project all of it out at the last token, one orthonormal direction at a time,
# and see whether the model still names the right category. The baseline removes a random
# 6-dimensional subspace.

# %%
ABLATE_LAYER = 3
ablate_name = P.resid_names(n_layers)[ABLATE_LAYER]
isa_probe = train_probe(X_last[ABLATE_LAYER], isa_y, len(categories))
probe_basis, _ = torch.linalg.qr(
    isa_probe.W - isa_probe.W.mean(dim=1, keepdim=True)
)  # (d_model, 7); last column spurious
random_basis, _ = torch.linalg.qr(torch.randn(model.cfg.d_model, 6, generator=torch.Generator().manual_seed(0)))


def category_accuracy(fwd_hooks: list) -> float:
    """Share of is-a prompts whose top category word (among the 7) is right, with the hooks active."""
    with torch.no_grad():
        logits = model.run_with_hooks(isa_tokens, fwd_hooks=fwd_hooks)[rows, isa_last][:, category_ids]
    return (logits.argmax(-1).cpu() == isa_y).float().mean().item()


def ablation_hooks(basis: torch.Tensor) -> list:
    """Hooks projecting out the first 6 columns of basis (d_model, >= 6), orthonormal, at the last token."""
    return [(ablate_name, direction_hook(basis[:, i].to(device), isa_last)) for i in range(6)]


ablation = {
    "clean": category_accuracy([]),
    "probe subspace removed": category_accuracy(ablation_hooks(probe_basis)),
    "random subspace removed": category_accuracy(ablation_hooks(random_basis)),
}
print("category accuracy: " + ", ".join(f"{k} {v:.2f}" for k, v in ablation.items()))
claim("ch06.ablate_clean", ablation["clean"])
claim("ch06.ablate_probe", ablation["probe subspace removed"])
claim("ch06.ablate_random", ablation["random subspace removed"])
claim("ch06.chance_isa", 1 / len(categories))

# %% [markdown]
# **Steering.** Now push the last token of every *non-animal* prompt along the probe's
# "animal" direction, with growing strength `alpha`, and count how often the model switches to
# " animal". The residual stream's norm there is about {{claim:ch06.norm_layer3=11}} (printed in section 1), so `alpha` is
# in the same units.

# %%
animal = categories.index("animal")
not_animal = isa_y != animal
animal_direction = isa_probe.direction(animal)
random_direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
alphas = [0, 2, 4, 6, 8, 10, 12]


def share_called_animal(direction: torch.Tensor, alpha: float) -> float:
    """Share of non-animal prompts answered ' animal' after steering by alpha along direction (d_model,)."""
    with torch.no_grad():
        logits = model.run_with_hooks(
            isa_tokens, fwd_hooks=[(ablate_name, direction_hook(direction.to(device), isa_last, alpha))]
        )[rows, isa_last][:, category_ids]
    return (logits.argmax(-1).cpu()[not_animal] == animal).float().mean().item()


steering = {
    "probe's animal direction": torch.tensor([share_called_animal(animal_direction, a) for a in alphas]),
    "random direction": torch.tensor([share_called_animal(random_direction, a) for a in alphas]),
}
print({k: [round(v, 2) for v in s.tolist()] for k, s in steering.items()})
claim("ch06.norm_layer3", X_last[ABLATE_LAYER].norm(dim=-1).mean())
claim("ch06.steer_6", 100 * steering["probe's animal direction"][alphas.index(6)])
claim("ch06.steer_8", 100 * steering["probe's animal direction"][alphas.index(8)])
claim("ch06.steer_from_10", 100 * steering["probe's animal direction"][alphas.index(10) :].min())
claim("ch06.steer_random", 100 * steering["random direction"].max())
plot.line(
    steering,
    x=alphas,
    title="Steering non-animals towards 'animal' at layer 3, last token",
    xlabel="alpha (steering strength)",
    ylabel="share now answered ' animal'",
)

# %% [markdown]
# What to see: removing the probe's 6-dimensional subspace at one position drops category
# accuracy from {{claim:ch06.ablate_clean=1.00}} to {{claim:ch06.ablate_probe=0.21}} (chance is {{claim:ch06.chance_isa=0.14}}), while removing a random one changes nothing
# ({{claim:ch06.ablate_random=1.00}}); and steering along the "animal" direction turns {{claim:ch06.steer_6=55.5%}} of the non-animals into animals at
# `alpha` = 6, {{claim:ch06.steer_8=93%}} at 8 and {{claim:ch06.steer_from_10=100%}} from 10 on, while a random direction of the same strength
# moves at most {{claim:ch06.steer_random=5.5%}}. Here the probe found
# directions the model really reads. (Try the same with a single direction, or at layer 2: the
# effect is much weaker — the category is spread over several directions and, earlier, still
# sits at the subject too, where later attention can fetch it again.)

# %% [markdown]
# ## 5. The same circuit in two models
#
# `toylang-llama` learned the same toy language with a different architecture: rotary position
# embeddings instead of learned ones, RMSNorm, a gated MLP. Same tokenizer, same data. Do the
# two grow the same circuits? We compare three things: **induction heads** (chapter 1), the
# **indirect-object** circuit (chapter 3), and how alike individual heads **attend**.

# %%
llama = load_model("toylang-llama", device=device)
models = {"toylang (GPT-2)": model, "toylang-llama": llama}
assert model.tokenizer.get_vocab() == llama.tokenizer.get_vocab()  # same tokens: patterns are comparable
print(llama)

SEG = 10
rep_tokens = data.repeated_tokens(batch=16, seg_len=SEG, seed=0).to(device)
induction_maps = {
    name: induction.head_scores(m, rep_tokens, partial(induction.induction_score, seg_len=SEG)).cpu()
    for name, m in models.items()
}
prev_maps = {
    name: induction.head_scores(m, rep_tokens, induction.previous_token_score).cpu() for name, m in models.items()
}
for name in models:
    flat = induction_maps[name].flatten()
    top = flat.topk(3)
    print(
        f"{name:>16}: top induction heads",
        ", ".join(f"{i // 4}.{i % 4} ({v:.2f})" for v, i in zip(top.values.tolist(), top.indices.tolist())),
        f"| best previous-token head {prev_maps[name].argmax() // 4}.{prev_maps[name].argmax() % 4}"
        f" ({prev_maps[name].max():.2f})",
    )
gpt2_ind, llama_ind = induction_maps["toylang (GPT-2)"], induction_maps["toylang-llama"]
claim("ch06.gpt2_induction", gpt2_ind[2, :3].min())
claim("ch06.gpt2_induction", gpt2_ind[2, :3].max())
claim("ch06.llama_ind_2_2", llama_ind[2, 2])
claim("ch06.llama_ind_2_0", llama_ind[2, 0])
claim("ch06.llama_prev_1_1", prev_maps["toylang-llama"][1, 1])
claim("ch06.gpt2_prev_max", prev_maps["toylang (GPT-2)"].max())
P.side_by_side(induction_maps, title="Induction score per head (layer x head)", colorbar="score")

# %%
P.side_by_side(prev_maps, title="Previous-token score per head", colorbar="score")

# %% [markdown]
# What to see: both models put their induction heads in **layer 2** — three in GPT-2 (2.0, 2.1,
# 2.2, scores {{claim:ch06.gpt2_induction=0.78–0.87}}) and two in Llama (2.2 at {{claim:ch06.llama_ind_2_2=0.97}}, 2.0 at {{claim:ch06.llama_ind_2_0=0.89}}). The previous-token half of
# the circuit differs: Llama has one crisp previous-token head in layer 1 (1.1, {{claim:ch06.llama_prev_1_1=0.97}}), GPT-2
# has none scoring above 0.4 (its best: {{claim:ch06.gpt2_prev_max=0.38}}) — with learned position embeddings it can spread "what came
# before" over several heads and layers.
#
# **The indirect-object circuit.** We patch each head's output from a clean prompt ("When Mary
# and John went to the store, John gave a drink to" → Mary) into a *flipped* one where the
# second mention of the subject is replaced by the indirect object ("..., Mary gave a drink to"
# → John), and measure how much of the clean logit difference each single head restores. We
# also measure how much each head attends from the last token to the indirect object rather
# than the subject (name movers score high).

# %%
ioi = data.ioi_prompts(40, seed=0, split="heldout", same_length=True, template="when")
print(ioi[0].text, "->", ioi[0].answer, "|", P.flip_subject(ioi[0]), "->", " " + ioi[0].s)
patch_maps, attention_maps, ioi_ld = {}, {}, {}
for name, m in models.items():
    clean, flipped, io_ids, s_ids = P.ioi_batch(m, ioi)
    with torch.no_grad():
        ioi_ld[name] = (
            float(logit_diff(m(clean), io_ids, s_ids).mean()),
            float(logit_diff(m(flipped), io_ids, s_ids).mean()),
        )
        print(f"{name:>16}: logit difference clean {ioi_ld[name][0]:.2f}, flipped {ioi_ld[name][1]:.2f}")
    patch_maps[name] = P.head_patching_map(m, clean, flipped, io_ids, s_ids)
    attention_maps[name] = P.ioi_attention_map(m, clean, io_ids, s_ids).cpu()
    top = patch_maps[name].flatten().topk(3)
    print(
        " " * 18 + "heads restoring the most:",
        ", ".join(f"{i // 4}.{i % 4} ({v:.2f})" for v, i in zip(top.values.tolist(), top.indices.tolist())),
    )
P.side_by_side(patch_maps, title="Patching one head's output (clean -> flipped): share of logit difference restored")

# %%
gpt2_patch, llama_patch = patch_maps["toylang (GPT-2)"], patch_maps["toylang-llama"]
gpt2_attn, llama_attn = attention_maps["toylang (GPT-2)"], attention_maps["toylang-llama"]
claim("ch06.ld_gpt2", ioi_ld["toylang (GPT-2)"][0])
claim("ch06.ld_llama", ioi_ld["toylang-llama"][0])
claim("ch06.ld_gpt2_flipped", ioi_ld["toylang (GPT-2)"][1])
claim("ch06.ld_llama_flipped", ioi_ld["toylang-llama"][1])
claim("ch06.gpt2_patch_0_3", gpt2_patch[0, 3])
claim("ch06.gpt2_attn_0_3", gpt2_attn[0, 3])
claim("ch06.llama_patch_1_1", llama_patch[1, 1])
claim("ch06.llama_patch_2_1", llama_patch[2, 1])
claim("ch06.llama_attn_2_0", llama_attn[2, 0])
claim("ch06.llama_attn_2_3", llama_attn[2, 3])
P.side_by_side(attention_maps, title="Attention from the last token: to the indirect object minus to the subject")

# %% [markdown]
# What to see: the two models solve the task equally well (logit differences {{claim:ch06.ld_gpt2=10.5}} and {{claim:ch06.ld_llama=12.0}},
# flipping to {{claim:ch06.ld_gpt2_flipped=−10.3}} and {{claim:ch06.ld_llama_flipped=−12.0}}) but not in the same place. In GPT-2 a single head in the *first*
# layer, 0.3, restores {{claim:ch06.gpt2_patch_0_3=0.94}} of the logit difference on its own; it attends from the last token
# almost only to the subject ({{claim:ch06.gpt2_attn_0_3=−0.89}}): an early "which name was mentioned last" head whose output
# later layers use to rule the subject out. In Llama no head does that alone: 1.1 ({{claim:ch06.llama_patch_1_1=0.67}}) and
# 2.1 ({{claim:ch06.llama_patch_2_1=0.63}}) share the work, and the heads that attend to the subject (2.0 at {{claim:ch06.llama_attn_2_0=−0.99}}, 2.3 at
# {{claim:ch06.llama_attn_2_3=−0.69}}) sit in layer 2 — 2.0 is also one of its induction heads.

# %% [markdown]
# ## Exercise 6.7 — how alike do two heads attend?
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Because the two models share a tokenizer, we can feed them the same tokens and compare their
# attention patterns head by head. For each pair of heads (one from each model), take the
# cosine similarity of their attention rows — each query's distribution over keys — and
# average over the batch and over every query position but the first (position 0 can only
# attend to itself, so every head agrees there).


# %%
def pattern_similarity(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of attention rows between every head of a and every head of b.

    pa: (heads_a, batch, q_pos, k_pos), pb: (heads_b, batch, q_pos, k_pos), on the same tokens.
    Query position 0 is left out. Returns (heads_a, heads_b).
    """
    # BEGIN SOLUTION
    a = torch.nn.functional.normalize(pa[:, :, 1:].float(), dim=-1)
    b = torch.nn.functional.normalize(pb[:, :, 1:].float(), dim=-1)
    return torch.einsum("ibqk,jbqk->ij", a, b) / (a.shape[1] * a.shape[2])
    # END SOLUTION


ch06.check_pattern_similarity(pattern_similarity)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Drop query 0 with `pa[:, :, 1:]`, normalise each row (the last dimension) with
# `torch.nn.functional.normalize(..., dim=-1)`, then `torch.einsum("ibqk,jbqk->ij", a, b)` sums the
# row cosines over batch and queries: divide by their number.
# </details>
#
# On repeated random tokens, `P.all_patterns` gives every head's pattern (head index =
# layer × 4 + head). Each GPT-2 head's best match in Llama:

# %%
heads = [f"{layer}.{h}" for layer in range(n_layers) for h in range(model.cfg.n_heads)]
similarity = pattern_similarity(P.all_patterns(model, rep_tokens).cpu(), P.all_patterns(llama, rep_tokens).cpu())
best = similarity.max(dim=1)
for i in range(len(heads)):
    print(
        f"GPT-2 {heads[i]} ~ Llama {heads[best.indices[i]]} (cosine {best.values[i]:.2f})",
        end="   " if i % 4 < 3 else "\n",
    )
llama_induction = [heads.index("2.0"), heads.index("2.2")]
for gpt2_head in ("2.0", "2.1", "2.2"):  # each GPT-2 induction head's better match among Llama's two
    claim("ch06.induction_pattern_cosine", similarity[heads.index(gpt2_head), llama_induction].max())
claim("ch06.early_pattern_cosine", similarity[heads.index("1.0"), heads.index("1.0")])
plot.imshow(
    similarity,
    x=heads,
    y=heads,
    title="Attention-pattern similarity on repeated tokens",
    xlabel="toylang-llama head",
    ylabel="toylang (GPT-2) head",
    diverging=False,
)

# %% [markdown]
# What to see: the GPT-2 induction heads 2.0–2.2 match Llama's induction heads 2.0 and 2.2
# (cosine {{claim:ch06.induction_pattern_cosine=0.86–0.92}}): on repeated text, the same job gives the same pattern. But a high cosine
# is not proof of a shared role: some early heads match nearly as well (GPT-2 1.0 ~ Llama 1.0 at
# {{claim:ch06.early_pattern_cosine=0.89}}) because on random tokens many heads attend in similar positional ways — to the first
# token, or to the last few. Check the behavioural scores as well as the patterns.
#
# **What transfers and what does not.**
#
# - *Transfers:* induction heads, in the same layer, with nearly the same attention pattern;
#   the is-a task is solved by both (every category right).
# - *Does not:* head indices (nothing ties GPT-2's head 2.1 to Llama's 2.1 — compare by
#   behaviour, never by index); the previous-token mechanism (one crisp head in Llama, diffuse
#   in GPT-2); and the indirect-object circuit — in GPT-2 a single layer-0 head (0.3) restores
#   almost all of the logit difference when patched, in Llama heads 1.1 and 2.1 share the work.
#   The task is the same, the algorithm's layout is not.
#
# This is the "universality" question of Chughtai et al. (2023) in miniature: models trained on
# the same data learn *some* of the same pieces, and which pieces is an empirical question —
# one you can now answer with probes, patching and pattern comparisons.

# %% [markdown]
# ## 6. Which direction does the model use? Difference of means versus logistic regression
#
# Section 4 showed that a probe's directions *can* be causal. But two probes that read a
# property equally well can point in different directions, and the model may use one more than
# the other. Marks & Tegmark (2023) compared two ways of finding a direction: the
# **logistic-regression** probe's weight vector, and the plain **difference of the class means**
# ("mass-mean probing"). Both classified true and false statements well; the difference of means
# was the more *causal* direction — pushing along it changed the model's answers more. Does our
# organism agree? Measure before believing.
#
# The contrast set: every animal and every instrument of the is-a facts, after random sentences,
# as an unfinished prompt ("... a harp is an"). Both categories take "an", so the last token
# gives nothing away; the model must fetch the category from the subject. The behaviour we
# watch is the model's **preference**: the logit of " animal" minus the logit of " instrument"
# at the last token.

# %%
classes = ("instrument", "animal")  # label 0, label 1
contrast = P.contrast_prompts(classes, n_contexts=8, seed=0)
c_tokens = model.to_tokens([text for text, _, _ in contrast])
c_last = P.last_positions(c_tokens, model.tokenizer.pad_token_id)
c_y = torch.tensor([label for _, _, label in contrast])
answer_ids = model.to_tokens(list(classes), prepend_bos=False)[:, 0]
X_c = residuals_at(model, c_tokens, c_last).cpu()
c_train, c_test = P.split_indices(len(contrast), test_frac=0.3, seed=0)
with torch.no_grad():
    c_logits = model(c_tokens)[torch.arange(len(contrast)), c_last][:, answer_ids].cpu()
preference = c_logits[:, 1] - c_logits[:, 0]
print(f"{len(contrast)} prompts ({int(c_y.sum())} animals), e.g. {contrast[0][0]!r}")
print(
    f"preference for ' animal': {preference[c_y == 1].mean():.1f} on animals, {preference[c_y == 0].mean():.1f} "
    f"on instruments; right sign on {((preference > 0).long() == c_y).float().mean():.0%} of prompts"
)

# %% [markdown]
# ## Exercise 6.8 — the difference-of-means direction
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 5 minutes
#
# The simplest probe there is: no training, just the two class centres.


# %%
def mean_difference(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The difference-of-means direction of a two-class set.

    X: (n, d_model); y: (n,) labels 0 or 1, both present. Returns (d_model,), pointing from the
    centre of class 0 to the centre of class 1, at its natural length (not normalised).
    """
    # BEGIN SOLUTION
    return X[y == 1].mean(dim=0) - X[y == 0].mean(dim=0)
    # END SOLUTION


ch06.check_mean_difference(mean_difference)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Boolean masks select each class: `X[y == 1]` is `(n_1, d_model)`. Average over the rows of each
# and subtract class 0's centre from class 1's.
# </details>
#
# As a classifier, the difference of means puts its threshold halfway between the two centres.
# Both probes, trained on 70% of the prompts and scored on the rest, at every layer:


# %%
def midpoint_accuracy(direction, centre, X, y):
    """Accuracy of 'class 1 iff (x - centre) . direction > 0' on X (n, d_model), y (n,)."""
    return (((X - centre) @ direction > 0).long() == y).float().mean().item()


dom_dirs, lr_probes, contrast_acc = [], [], {"difference of means": [], "logistic regression": []}
for layer in range(n_layers + 1):
    Xtr, ytr = X_c[layer, c_train], c_y[c_train]
    dom_dirs.append(mean_difference(Xtr, ytr))
    lr_probes.append(train_probe(Xtr, ytr, 2))
    centre = (Xtr[ytr == 0].mean(0) + Xtr[ytr == 1].mean(0)) / 2
    contrast_acc["difference of means"].append(midpoint_accuracy(dom_dirs[-1], centre, X_c[layer, c_test], c_y[c_test]))
    contrast_acc["logistic regression"].append(lr_probes[-1].accuracy(X_c[layer, c_test], c_y[c_test]))
cosines = [torch.cosine_similarity(d, p.direction(1), dim=0).item() for d, p in zip(dom_dirs, lr_probes)]
for name, acc in contrast_acc.items():
    print(f"{name:>20}, held out:", " ".join(f"{v:.2f}" for v in acc))
print(f"{'cosine between them':>20}:          ", " ".join(f"{v:.2f}" for v in cosines))
claim("ch06.dom_acc_2", contrast_acc["difference of means"][2])
claim("ch06.lr_acc_2", contrast_acc["logistic regression"][2])
claim("ch06.dom_acc_3", contrast_acc["difference of means"][3])
claim("ch06.lr_acc_3", contrast_acc["logistic regression"][3])
claim("ch06.dom_lr_cosine_3", cosines[3])

# %% [markdown]
# What to see: logistic regression reads the category earlier (boundary 2: {{claim:ch06.lr_acc_2=1.00}} against
# {{claim:ch06.dom_acc_2=0.93}} for the difference of means), and from boundary 3 on both are perfect
# ({{claim:ch06.dom_acc_3=1.00}} and {{claim:ch06.lr_acc_3=1.00}}) with directions at cosine {{claim:ch06.dom_lr_cosine_3=0.93}}. Accuracy cannot
# tell them apart there. An intervention can.
#
# ## Exercise 6.9 — the causal test: steer and ablate along a direction
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵🔵 · about 25 minutes
#
# Build the experiment that tells the two directions apart. Given a direction that points from
# class 0 towards class 1, measure three things about the model's preference (answer 1's logit
# minus answer 0's, at each prompt's position):
#
# - **steer**: add the direction, scaled to length `alpha`, at the hook point and position, on
#   the class-0 prompts only; report how much their preference rises on average;
# - **ablate**: project the direction out instead (on every prompt), and report how much the
#   *margin* of the right answer shrinks on average — for a class-1 prompt the margin is the
#   preference, for a class-0 prompt it is minus the preference — so that a direction the model
#   relies on scores positive whichever class the prompt is;
# - **ablated_accuracy**: the share of prompts whose preference still has the right sign after
#   the ablation.
#
# Use your `direction_hook` from exercise 6.6; leave no hook behind.


# %%
def direction_effects(
    model,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    hook_name: str,
    direction: torch.Tensor,
    answer_ids: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
) -> dict[str, float]:
    """What steering and ablating along `direction` at `hook_name` does to the model's choice of answer.

    tokens: (batch, pos); positions: (batch,) the position to edit and to read in each prompt;
    hook_name: a residual-stream hook point; direction: (d_model,), any length, from class 0
    towards class 1; answer_ids: (2,) the token ids of class 0's and class 1's answer; y: (batch,)
    labels 0/1, both present; alpha: the steering strength (the length of the added vector).
    The preference is logit(answer_ids[1]) - logit(answer_ids[0]) at each prompt's position.
    Returns floats {"steer": mean rise of the preference over class-0 prompts when steered,
    "ablate": mean fall of the right answer's margin over all prompts when the direction is
    projected out, "ablated_accuracy": share of prompts whose preference keeps the right sign
    after the ablation}. The model is left as it was.
    """
    # BEGIN SOLUTION
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    ids = answer_ids.to(tokens.device)

    def pref(fwd_hooks: list) -> torch.Tensor:
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)[rows, positions.to(tokens.device)]
        return (logits[:, ids[1]] - logits[:, ids[0]]).float().cpu()

    y = y.cpu()
    sign = 2 * y.float() - 1  # +1 for class 1, -1 for class 0: margin = sign * preference
    clean = pref([])
    steered = pref([(hook_name, direction_hook(direction, positions, alpha))])
    ablated = pref([(hook_name, direction_hook(direction, positions, None))])
    return {
        "steer": (steered - clean)[y == 0].mean().item(),
        "ablate": (sign * (clean - ablated)).mean().item(),
        "ablated_accuracy": (sign * ablated > 0).float().mean().item(),
    }
    # END SOLUTION


ch06.check_direction_effects(direction_effects)

# %% [markdown]
# <details><summary>Hint 1 — the plan</summary>
#
# Three forward passes, all under `torch.no_grad()`: clean, steered, ablated. Write one inner
# function that runs `model.run_with_hooks(tokens, fwd_hooks=...)` and returns the `(batch,)`
# preference read at `[rows, positions]`; `direction_hook(direction, positions, alpha)` steers and
# `direction_hook(direction, positions)` ablates (it normalises the direction for you).
# </details>
#
# <details><summary>Hint 2 — signs</summary>
#
# `sign = 2 * y - 1` is +1 for class 1 and −1 for class 0, so the right answer's margin is
# `sign * preference`. Steering: `(steered - clean)[y == 0].mean()`. Ablation:
# `(sign * (clean - ablated)).mean()`; still right: `sign * ablated > 0`. Return `.item()`s.
# </details>
#
# Now the comparison, at boundary 3 (the input of the last block), where both probes are perfect.
# The baseline is the average over five random directions; `alpha` = 4 is about a third of the
# residual stream's norm there.

# %%
C_LAYER, ALPHA = 3, 4.0
c_name = P.resid_names(n_layers)[C_LAYER]
contrast_dirs = {
    "difference of means": dom_dirs[C_LAYER],
    "logistic regression": lr_probes[C_LAYER].direction(1),
}
effect = partial(direction_effects, model, c_tokens, c_last.to(device), c_name, answer_ids=answer_ids, y=c_y)
effects = {name: effect(direction=d.to(device), alpha=ALPHA) for name, d in contrast_dirs.items()}
random_dirs = torch.randn(5, model.cfg.d_model, generator=torch.Generator().manual_seed(2))
random_effects = [effect(direction=d.to(device), alpha=ALPHA) for d in random_dirs]
effects["random (mean of 5)"] = {k: sum(e[k] for e in random_effects) / 5 for k in random_effects[0]}
for name, e in effects.items():
    print(f"{name:>20}: " + ", ".join(f"{k} {v:.2f}" for k, v in e.items()))
dom_e, lr_e, rand_e = effects["difference of means"], effects["logistic regression"], effects["random (mean of 5)"]
claim("ch06.steer_dom", dom_e["steer"])
claim("ch06.steer_lr", lr_e["steer"])
claim("ch06.steer_rand", rand_e["steer"])
claim("ch06.ablate_dom", dom_e["ablate"])
claim("ch06.ablate_lr", lr_e["ablate"])
claim("ch06.ablated_acc_dom", dom_e["ablated_accuracy"])
claim("ch06.ablated_acc_lr", lr_e["ablated_accuracy"])
claim("ch06.ablated_acc_rand", rand_e["ablated_accuracy"])

# %% [markdown]
# The whole steering curve, for both probes and one random direction:

# %%
steer_alphas = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
instruments = (c_y == 0).to(device)


def steered_preference(direction: torch.Tensor, alpha: float) -> float:
    """Mean preference for ' animal' over the instrument prompts, steered by alpha along direction at C_LAYER."""
    logits = P.intervene(model, c_tokens, C_LAYER, direction.to(device), c_last.to(device), alpha)
    picked = logits[torch.arange(len(contrast), device=device), c_last.to(device)][:, answer_ids.to(device)]
    return (picked[:, 1] - picked[:, 0])[instruments].mean().item()


curves = {**contrast_dirs, "random": random_dirs[0]}
plot.line(
    {
        name: torch.tensor([steered_preference(d, a) for a in steer_alphas]) - preference[c_y == 0].mean()
        for name, d in curves.items()
    },
    x=steer_alphas,
    title="Steering instruments towards 'animal' at boundary 3: rise of the preference",
    xlabel="alpha (length of the added vector)",
    ylabel="mean rise of logit(animal) - logit(instrument)",
)

# %% [markdown]
# What to see: both directions are causal, and a random one is not. Steering by 4 along the
# difference of means raises the instruments' preference for " animal" by {{claim:ch06.steer_dom=12.4±0.3}}, along the
# logistic-regression direction by {{claim:ch06.steer_lr=11.4±0.3}}, along a random direction by {{claim:ch06.steer_rand=−0.1±0.3}} on average. Projecting out the
# single difference-of-means direction shrinks the right answer's margin by {{claim:ch06.ablate_dom=7.1±0.3}} logits and
# leaves {{claim:ch06.ablated_acc_dom=0.64}} of the answers right; projecting out the logistic-regression direction shrinks it by
# {{claim:ch06.ablate_lr=6.4±0.3}} and leaves {{claim:ch06.ablated_acc_lr=0.87}} right; a random direction leaves {{claim:ch06.ablated_acc_rand=1.00}}.
#
# So on our organism, as Marks & Tegmark found in LLaMA-2, the difference of means is the more
# causal of the two — but only modestly, because here the two directions nearly agree. How
# close the logistic-regression direction stays depends on how it was trained: weight decay
# pulls it towards the high-variance, class-mean direction, and without decay it drifts towards
# whatever separates the training set with the widest margin. Train it ten times longer with no
# weight decay and compare again:

# %%
lr_free = train_probe(X_c[C_LAYER, c_train], c_y[c_train], 2, steps=3000, weight_decay=0.0)
free_effects = effect(direction=lr_free.direction(1).to(device), alpha=ALPHA)
free_cosine = torch.cosine_similarity(lr_free.direction(1), dom_dirs[C_LAYER], dim=0).item()
print(
    f"held-out accuracy {lr_free.accuracy(X_c[C_LAYER, c_test], c_y[c_test]):.2f}, cosine to the difference of "
    f"means {free_cosine:.2f}; " + ", ".join(f"{k} {v:.2f}" for k, v in free_effects.items())
)
claim("ch06.free_acc", lr_free.accuracy(X_c[C_LAYER, c_test], c_y[c_test]))
claim("ch06.free_cosine", free_cosine)
claim("ch06.free_ablated_acc", free_effects["ablated_accuracy"])

# %% [markdown]
# Still {{claim:ch06.free_acc=1.00}} accurate, but now at cosine {{claim:ch06.free_cosine=0.86}} to the difference of means, and projecting it out leaves
# {{claim:ch06.free_ablated_acc=0.97}} of the answers right: a perfect classifier whose direction the model barely needs. The
# accuracy of a probe says nothing about which of these you got. What the comparison supports
# is a hypothesis, not a mechanism: the model's category read-out at boundary 3 lies closer to
# the class-mean direction than to the max-margin one.

# %% [markdown]
# ## 7. The contrast set without labels: principal components
#
# If the category is the biggest thing that varies across these prompts, the first principal
# component of the residual stream should find it with no labels at all. `P.pca` returns the top
# components, the fraction of variance each explains, and every prompt's coordinates.

# %%
comps, explained, scores = P.pca(X_c[C_LAYER], k=2)
pc1_alignment = torch.cosine_similarity(comps[0], dom_dirs[C_LAYER], dim=0).abs().item()
pc1_alignment_2 = torch.cosine_similarity(P.pca(X_c[2], k=1)[0][0], dom_dirs[2], dim=0).abs().item()
print(f"boundary {C_LAYER}: variance explained by PC1 {explained[0]:.2f}, PC2 {explained[1]:.2f}")
print(f"|cosine(PC1, difference of means)|: {pc1_alignment:.2f} at boundary 3, {pc1_alignment_2:.2f} at boundary 2")
claim("ch06.pc1_var", explained[0])
claim("ch06.pc2_var", explained[1])
claim("ch06.pc1_dom_cos", pc1_alignment)
claim("ch06.pc1_dom_cos_2", pc1_alignment_2)
P.scatter_by_label(
    scores,
    c_y,
    classes,
    title=f"Residual stream at the last token, boundary {C_LAYER}: first two principal components",
    xlabel=f"PC1 ({explained[0]:.0%} of variance)",
    ylabel=f"PC2 ({explained[1]:.0%} of variance)",
)

# %% [markdown]
# What to see: at boundary 3 the first component explains {{claim:ch06.pc1_var=0.26}} of the variance (the second
# {{claim:ch06.pc2_var=0.21}}) and is the difference-of-means direction (|cosine| {{claim:ch06.pc1_dom_cos=0.99}}): the two categories sit on
# either side of it. One boundary earlier the alignment is only {{claim:ch06.pc1_dom_cos_2=0.66}} — there the category is
# readable, but it is not yet the largest thing going on. Unsupervised structure finds a feature
# only where that feature dominates the variance; that is the hope, and the weakness, of the
# next method.

# %% [markdown]
# ## 8. An unsupervised probe: contrast-consistent search (optional)
#
# Burns et al. (2022) asked for a truth direction *without labels*. Turn every question into a
# **contrast pair**, the same text completed both ways — here "... a harp is an animal" and
# "... a harp is an instrument" — exactly one of which is true. A probe `p(x)` that reads truth
# should be **consistent**, p(x⁺) + p(x⁻) ≈ 1, and **confident**, not both near ½. Contrast-consistent
# search (CCS) trains a linear probe on those two wishes alone.
#
# One step is easy to miss and matters most: the members of each pair differ in their last word,
# so every x⁺ shares an "ends in *animal*" feature that every x⁻ lacks. A probe could be perfectly
# consistent and confident by reading that word. Burns et al. therefore **normalise each side
# separately** (subtract the mean of all x⁺ from each x⁺, the same for x⁻, and divide by each
# side's standard deviation) before training.
#
# ## Exercise 6.10 — the CCS loss
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Contrast-consistent search's loss on a batch of contrast pairs.

    p_pos, p_neg: (n,) the probe's probability that the first / second member of each pair is
    true. Returns a scalar tensor (differentiable), the sum of two terms each averaged over the
    pairs: a consistency term, zero when the two probabilities of every pair sum to one, and a
    confidence term, zero when in every pair one of the two is zero; both are squared errors.
    """
    # BEGIN SOLUTION
    consistency = (p_pos - (1 - p_neg)).pow(2).mean()
    confidence = torch.minimum(p_pos, p_neg).pow(2).mean()
    return consistency + confidence
    # END SOLUTION


ch06.check_ccs_loss(ccs_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Consistency: `(p_pos - (1 - p_neg)) ** 2`. Confidence: `torch.minimum(p_pos, p_neg) ** 2` — the
# smaller of the two should be near zero (without it, p = ½ everywhere is perfectly consistent).
# Take the mean of each over the pairs and add them.
# </details>
#
# ## Exercise 6.11 — train a CCS probe
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪ · about 30 minutes
#
# Now the whole method: normalise each side with its own statistics, start from a seeded random
# direction, and minimise your loss with Adam. Keep the normalisation statistics in the probe
# you return, so it can score new pairs the same way. `normalize=False` is there to see what
# goes wrong without it.


# %%
def train_ccs(
    x_pos: torch.Tensor,
    x_neg: torch.Tensor,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    normalize: bool = True,
) -> CCSProbe:
    """Contrast-consistent search: a linear probe trained on unlabelled contrast pairs.

    x_pos, x_neg: (n, d_model), the first and second member of each pair. With `normalize`,
    each side is standardised with its own per-feature mean and standard deviation (torch's
    default .std); without it the statistics are mean 0 and std 1. The probe
    p(x) = sigmoid(x_standardised @ w + b) starts from w = torch.randn(d_model, generator=
    torch.Generator().manual_seed(seed)) / sqrt(d_model), b = 0, and takes `steps` full-batch
    Adam steps at `lr` on `ccs_loss`. Returns CCSProbe(w (d_model,), b (), mean_pos, std_pos,
    mean_neg, std_neg), the statistics each (d_model,). Uses no labels.
    """
    # BEGIN SOLUTION
    x_pos, x_neg = x_pos.detach().float(), x_neg.detach().float()
    d = x_pos.shape[1]
    if normalize:
        stats = (x_pos.mean(0), x_pos.std(0), x_neg.mean(0), x_neg.std(0))
    else:
        stats = (torch.zeros(d), torch.ones(d), torch.zeros(d), torch.ones(d))
    w = (torch.randn(d, generator=torch.Generator().manual_seed(seed)) / d**0.5).requires_grad_()
    b = torch.zeros((), requires_grad=True)
    probe = CCSProbe(w, b, *stats)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        loss = ccs_loss(*probe.probabilities(x_pos, x_neg))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return CCSProbe(w.detach(), b.detach(), *stats)
    # END SOLUTION


ch06.check_train_ccs(train_ccs)

# %% [markdown]
# <details><summary>Hint 1 — the shape of it</summary>
#
# It is exercise 6.2's loop with another loss: parameters `w` `(d_model,)` and `b` `()` with
# `requires_grad`, `torch.optim.Adam([w, b], lr=lr)`, then `steps` times: loss, `zero_grad`,
# `backward`, `step`. A `CCSProbe` built around the live `w` and `b` gives you
# `.probabilities(x_pos, x_neg)` inside the loop.
# </details>
#
# <details><summary>Hint 2 — normalisation</summary>
#
# `x_pos.mean(0)` and `x_pos.std(0)` are the first side's statistics, `x_neg.mean(0)` and
# `x_neg.std(0)` the second's; never pool the two sides (pooling leaves the "which word ends the
# text" feature in). Without normalising, use zeros and ones of shape `(d_model,)`.
# </details>
#
# Now on the organism: the contrast pairs are our prompts completed with " animal" (x⁺) and
# with " instrument" (x⁻); x⁺ is the true one for the animals. We read the last token at
# boundary 3 and run `P.fit_ccs` — the package's copy of `train_ccs` (the reference answer, not yours) from ten random starts, keeping the one with
# the lowest loss, as Burns et al. do. The labels are used only to score the result, and as a
# supervised reference: a logistic-regression probe on the normalised differences x⁺ − x⁻.


# %%
def completed(word: str) -> torch.Tensor:
    """Residuals (n_layers + 1, n, d_model) at the last token of every contrast prompt completed with word."""
    tokens = model.to_tokens([f"{text} {word}" for text, _, _ in contrast])
    return residuals_at(model, tokens, P.last_positions(tokens, model.tokenizer.pad_token_id)).cpu()


x_pos, x_neg = completed(classes[1])[C_LAYER], completed(classes[0])[C_LAYER]
ccs_probe, ccs_restarts, ccs_losses = P.fit_ccs(x_pos, x_neg, n_restarts=10, seed=0)
restart_acc = torch.tensor([p.accuracy(x_pos, x_neg, c_y) for p in ccs_restarts])
best_acc = ccs_probe.accuracy(x_pos, x_neg, c_y)
raw = train_ccs(x_pos, x_neg, lr=0.01, normalize=False)
raw_credence = raw.credence(x_pos, x_neg)
diff = (x_pos - ccs_probe.mean_pos) / ccs_probe.std_pos - (x_neg - ccs_probe.mean_neg) / ccs_probe.std_neg
supervised = train_probe(diff[c_train], c_y[c_train], 2).accuracy(diff[c_test], c_y[c_test])
print("final loss of each start:  ", " ".join(f"{v:.3f}" for v in ccs_losses.tolist()))
print("its accuracy (vs labels):  ", " ".join(f"{v:.2f}" for v in restart_acc.tolist()))
print(f"lowest-loss start: accuracy {best_acc:.2f}; supervised probe on the same pairs, held out: {supervised:.2f}")
print(
    f"without normalisation: loss {float(ccs_loss(*raw.probabilities(x_pos, x_neg))):.4f}, credence "
    f"{raw_credence.min():.2f}..{raw_credence.max():.2f}, accuracy {raw.accuracy(x_pos, x_neg, c_y):.2f}"
    f" (share of pairs whose first member is true: {c_y.float().mean():.2f})"
)
decisive = ((restart_acc - 0.5).abs() > 0.35).sum().item()  # starts within 0.15 of perfect, either sign
claim("ch06.ccs_best_acc", best_acc)
claim("ch06.ccs_acc_min", restart_acc.min())
claim("ch06.ccs_acc_max", restart_acc.max())
claim("ch06.ccs_decisive", decisive)
claim("ch06.ccs_loss_min", ccs_losses.min())
claim("ch06.ccs_loss_max", ccs_losses.max())
claim("ch06.ccs_supervised", supervised)
claim("ch06.ccs_raw_loss", float(ccs_loss(*raw.probabilities(x_pos, x_neg))))
claim("ch06.ccs_raw_credence", raw_credence.min())
claim("ch06.ccs_raw_acc", raw.accuracy(x_pos, x_neg, c_y))
claim("ch06.ccs_raw_acc", c_y.float().mean())
plot.scatter(
    ccs_losses,
    restart_acc,
    labels=[f"seed {s}" for s in range(10)],
    title="CCS from ten random starts: final loss against accuracy (labels unseen)",
    xlabel="final CCS loss",
    ylabel="accuracy against the labels",
)

# %% [markdown]
# What to see, on our organism at boundary 3:
#
# - **The information is there.** The supervised probe on the same normalised pairs is right on
#   {{claim:ch06.ccs_supervised=1.00}} of held-out pairs. (In these pairs "the animal completion is true" and "the subject is an
#   animal" coincide, so the supervised probe may read either.)
# - **CCS finds it only sometimes.** The ten starts end with losses from {{claim:ch06.ccs_loss_min=0.033}} to {{claim:ch06.ccs_loss_max=0.050}} and accuracies anywhere
#   from {{claim:ch06.ccs_acc_min=0.09}} to {{claim:ch06.ccs_acc_max=0.97}}; only {{claim:ch06.ccs_decisive=3}} of the ten land within 0.15 of a perfect split, and their losses are
#   not reliably lower than the rest. With 128 dimensions and 184 pairs there are many directions
#   that are nearly consistent and confident; the loss hardly prefers the true one.
# - **Sign ambiguity.** The lowest-loss start scores {{claim:ch06.ccs_best_acc=0.09}}: it found (nearly) the truth direction,
#   upside down. Consistency and confidence are unchanged when p becomes 1 − p, so without at
#   least one labelled example nothing says which end is "true".
# - **A salient feature that is not truth.** Without per-side normalisation the probe reaches a loss
#   of {{claim:ch06.ccs_raw_loss=0.0008±0.0004}}, lower than any normalised start, by saying "the *animal* completion is the
#   true one" for every pair (credence at least {{claim:ch06.ccs_raw_credence=0.96}}): it reads the last word, which is perfectly
#   consistent and confident, and its accuracy, {{claim:ch06.ccs_raw_acc=0.65}}, is just the share of animals.
#   Farquhar et al. (2023, *Challenges with unsupervised LLM knowledge discovery*) show the
#   general form: any feature that flips between the two members of a pair satisfies the CCS
#   loss as well as truth does, so CCS finds whichever is most salient. Normalisation removes the
#   one feature we built in; it cannot remove the ones we did not think of.
#
# Farquhar et al.'s own demonstration, in miniature: append a random distractor word to each
# pair, the *same* word to both members ("... a harp is an animal. red" and "... a harp is an
# instrument. red"; "Monday" for other pairs), and read the last token. Normalisation is on; the
# distractor is independent of truth.

# %%
distractor = torch.randint(2, (len(contrast),), generator=torch.Generator().manual_seed(5))
distractor_words = ("red", "Monday")


def completed_with_distractor(word: str) -> torch.Tensor:
    """Residuals at boundary C_LAYER at the last token of each contrast prompt + word + its pair's distractor word."""
    texts = [f"{text} {word}. {distractor_words[int(k)]}" for (text, _, _), k in zip(contrast, distractor)]
    tokens = model.to_tokens(texts)
    return residuals_at(model, tokens, P.last_positions(tokens, model.tokenizer.pad_token_id))[C_LAYER].cpu()


d_pos, d_neg = completed_with_distractor(classes[1]), completed_with_distractor(classes[0])
d_probe, _, d_losses = P.fit_ccs(d_pos, d_neg, n_restarts=10, seed=0)
acc_truth, acc_word = d_probe.accuracy(d_pos, d_neg, c_y), d_probe.accuracy(d_pos, d_neg, distractor)
d_truth, d_distractor = max(acc_truth, 1 - acc_truth), max(acc_word, 1 - acc_word)  # CCS cannot know its sign
print(
    f"lowest-loss start (loss {d_losses.min():.2f}): truth {d_truth:.2f}, distractor word {d_distractor:.2f} (either sign)"
)
claim("ch06.distractor_truth", d_truth)
claim("ch06.distractor_word", d_distractor)

# %% [markdown]
# What to see: the lowest-loss probe sorts the pairs by their distractor word ({{claim:ch06.distractor_word=1.00}}, either sign)
# and not by truth ({{claim:ch06.distractor_truth=0.52}}, chance). The last word dominates the residual stream there, and the
# loss cannot tell "which word came last" from "which completion is true".
#
# CCS is a hypothesis generator, not a truth detector: check what it found against labels,
# against a supervised probe, and causally (exercise 6.9) before believing it.

# %% [markdown]
# ## 9. Try it on GPT-2
#
# Probes work on any model. Here is the truth probe on GPT-2 small, with the same statements
# (GPT-2 splits words into several tokens, so we read the last token of each statement). This
# needs a network (GPT-2 is downloaded once, ~500 MB) and is skipped offline. Marks & Tegmark
# found truth directions mostly in larger models, so expect a modest score from GPT-2 small.

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    g_last = torch.tensor([len(gpt2.to_tokens(text)[0]) - 1 for text, _, _ in truth])
    g_X = []
    for start in range(0, len(truth), 64):  # 64 statements at a time, each batch only as wide as it needs
        texts = [text for text, _, _ in truth[start : start + 64]]
        g_X.append(residuals_at(gpt2, gpt2.to_tokens(texts), g_last[start : start + 64].to(device)).cpu())
    g_X = torch.cat(g_X, dim=1)
    g_scores = probe_scores(g_X, truth_y, truth_control, truth_train, truth_test)
    print("GPT-2 small, truth probe by layer:", " ".join(f"{v:.2f}" for v in g_scores["task"].tolist()))
else:
    print("Offline: skipping the GPT-2 truth probe.")

# %% [markdown]
# ## Summary
#
# - A linear probe is twenty lines of PyTorch; the care goes into *where* it reads (the subject
#   or the last token tell different stories), *what* it is scored on (held-out examples), and
#   *what it is compared with* (a control task; selectivity = task − control).
# - Person / place / animal is readable from the embedding on, even for words the probe never
#   saw.
# - The is-a category reaches the last token after block 0 and is best read at boundary 2;
#   a truth signal exists in the toy model but is weak.
# - Probe directions can be causal: removing the is-a subspace breaks the model's answer,
#   steering along "animal" changes it, random directions do neither.
# - Two architectures trained on the same language share induction heads (same layer, nearly
#   the same patterns) but lay out the indirect-object circuit differently.
# - Two probes can be equally accurate and unequally causal: on our animal/instrument contrast
#   the difference of means moves the model somewhat more than logistic regression, and it is
#   also the first principal component — measured here, not assumed.
# - An unsupervised probe (CCS) can find the truth direction, but its loss barely prefers it, it
#   cannot know the sign, and without care it reads the last word instead.
