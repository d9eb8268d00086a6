# %% [markdown]
# # Chapter 7 — Circuits made of features: transcoders and attribution graphs
#
# In chapter 3 you explained one behaviour with **heads**: patch this head, that path, watch
# the logit difference come back. In chapter 4 you found **features** — sparse directions that
# mean one thing — but each on its own, in one layer. This chapter puts the two together, as the
# field's method of 2025 does: explain *one prediction* as a graph of features that cause each
# other, from the input tokens to the logit.
#
# The recipe (Ameisen et al. 2025, "Circuit Tracing"): replace every MLP by a **transcoder**, a
# sparse, readable stand-in that reads what the MLP reads and predicts what it writes. Keep what
# it misses as an **error node**, so nothing is lost. Then, for this one prompt, **freeze** every
# attention pattern and every norm's scale. What is left is *linear* in the features, so the
# effect of every feature on every later feature — and on the logit — is one exact number, an
# edge. Prune the graph to the few nodes that carry most of the influence, read the features,
# and test the story by switching features off.
#
# You do it all on the course's toy-language model, offline, on a CPU. Its task rules are known
# (our own generator wrote every sentence), so you can hold the graph against them — and against
# chapter 3's head-level circuit for the very same prompt.
#
# **Goals**
# - Write a transcoder's forward pass and loss; read its metrics (variance explained, CE loss
#   recovered with every MLP replaced at once, L0, dead features).
# - See why freezing attention and norms makes the model linear in its features, and compute a
#   direct effect between two features, then a whole prompt's adjacency matrix.
# - Compute influence over all paths and prune a graph as Ameisen et al. do; explore it in an
#   interactive figure.
# - Label features against the toy grammar's categories.
# - Predict what ablating or steering features does from the graph, then measure it, and turn
#   the comparison into a faithfulness number.
# - Trace an IOI prompt and a fact-recall prompt end to end, and compare with chapter 3.
#
# **Prerequisites:** chapter 3 (logit difference, the IOI circuit), chapter 4 (TopK SAEs, L0,
# CE loss recovered, dashboards). Chapter 2's direct logit attribution helps.
#
# **Time:** about 2½ hours.
#
# **Readings**
# - Ameisen et al., [*Circuit Tracing: Revealing Computational Graphs in Language Models*](https://transformer-circuits.pub/2025/attribution-graphs/methods.html) (2025) —
#   the method: replacement model, error nodes, frozen attention, pruning, interventions.
# - Lindsey et al., [*On the Biology of a Large Language Model*](https://transformer-circuits.pub/2025/attribution-graphs/biology.html) (2025) —
#   what the graphs show in Claude 3.5 Haiku (multi-step facts, planning); read "Multi-step Reasoning".
# - Dunefsky, Chlenski & Nanda, [*Transcoders Find Interpretable LLM Feature Circuits*](https://arxiv.org/abs/2406.11944) (2024) —
#   transcoders, and why they make circuits through MLPs readable.

# %%
import time

import torch
from IPython.display import SVG, display

from digsite import attribution, feature_contexts, graph_plot, interventions, load_model, plot, pruning, replacement
from digsite.checks import ch07
from digsite.claims import claim
from digsite.notebook import setup
from digsite.sae import token_labels
from digsite.transcoders import evaluate_transcoders, load_transcoders, transcoder_card

device = setup(seed=0)
t_start = time.process_time()
model = load_model("toylang", device="cpu")
tc = load_transcoders("toylang")
print(model)
print(f"transcoders: {tc.cfg.n_layers} layers x {tc.cfg.d_tc} features, k = {tc.cfg.k} active per token")
claim("ch07.train_minutes", transcoder_card("toylang")["train_seconds"] / 60)

# %% [markdown]
# Everything here runs on the CPU: the graphs are computed in float64 on one prompt at a time,
# and the model is small enough that each takes seconds, not minutes.
#
# # Part 1 — Transcoders
#
# An SAE (chapter 4) rewrites an activation *as itself*. A **transcoder** rewrites a
# *computation*: it reads the MLP's input `x` (the output of the block's `ln2`) and predicts the
# MLP's output `y` (`hook_mlp_out`):
#
# $$f = \mathrm{TopK}_k\big(\mathrm{ReLU}(x W_{enc} + b_{enc})\big), \qquad
# \hat y = f\,W_{dec} + b_{dec} + x\,W_{skip}.$$
#
# The last term is a **linear skip**: much of what a small MLP does is nearly linear, and a
# matrix takes that part for free, leaving the features for what is not. Why bother predicting
# the MLP rather than reconstructing the residual stream? Because then the transcoder *is* a
# (sparse, readable) MLP: every feature is read from the residual stream by one linear map and
# written back by another. A circuit through an SAE latent has to pass through the MLP's
# thousands of neurons; a circuit through a transcoder feature does not.
#
# ## Exercise 7.1 — the transcoder's forward pass
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write the forward pass for one layer's transcoder. Keep the k largest pre-activations after
# the ReLU, zero the rest (chapter 4's TopK), then decode and add the skip.


# %%
def transcoder_forward(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor,
    W_skip: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One transcoder on the MLP's input.

    x (..., d_model); W_enc (d_model, d_tc); b_enc (d_tc,); W_dec (d_tc, d_model); b_dec (d_model,);
    W_skip (d_model, d_model). Returns (features (..., d_tc), non-negative with at most k non-zero
    per token; predicted MLP output (..., d_model)).
    """
    # BEGIN SOLUTION
    pre = torch.relu(x @ W_enc + b_enc)
    values, idx = pre.topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, values)
    return f, f @ W_dec + b_dec + x @ W_skip
    # END SOLUTION


ch07.check_transcoder_forward(transcoder_forward)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `torch.relu(...).topk(k, dim=-1)` gives the values and indices of the k largest; put them into
# a tensor of zeros with `scatter(-1, indices, values)`.
# </details>
# <details><summary>Hint 2</summary>
#
# The prediction has three terms: the features decoded (`f @ W_dec`), the decoder bias, and the
# skip applied to the *input* `x`.
# </details>
#
# ## Exercise 7.2 — the loss
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes
#
# The four MLPs write outputs of very different sizes, and we train all four transcoders at
# once, so each one's squared error is divided by the variance of its target: 1 means "no
# better than predicting the mean output", 0 means perfect. One minus it is the **fraction of
# variance explained** that the transcoders' card reports.


# %%
def transcoder_loss(y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    """Normalised MSE. y, y_hat (tokens, d_model), the real and the predicted MLP output -> a scalar tensor:
    the mean squared error per element divided by the mean squared deviation of y from its mean over tokens."""
    # BEGIN SOLUTION
    return (y_hat - y).pow(2).mean() / (y - y.mean(0)).pow(2).mean()
    # END SOLUTION


ch07.check_transcoder_loss(transcoder_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `y.mean(0)` is the mean output over tokens; the denominator is the MSE of predicting it.
# </details>
#
# The shipped transcoders were trained with exactly this loss, by
# `python -m digsite.organisms train toylang-transcoders` ({{claim:ch07.train_minutes=5–30}} minutes on
# one CPU thread of a shared machine; never in a notebook). Their card holds the recipe and the metrics. Let us measure them again on
# a few fresh texts — with **every MLP replaced at once**, the hard test, because errors compound
# from layer to layer.

# %%
print(transcoder_card("toylang")["command"])
from digsite.sae import toylang_tokens

eval_tokens = toylang_tokens(model, 60, seed=7_000_000)
metrics = evaluate_transcoders(model, tc, eval_tokens)
for key in ["fve_per_layer", "l0_per_layer", "dead_fraction_per_layer"]:
    print(f"{key:24s}", metrics[key])
print(
    f"next-token loss: clean {metrics['ce_clean']:.3f}, all MLPs replaced {metrics['ce_all_replaced']:.3f}, "
    f"all zero-ablated {metrics['ce_all_zero_ablated']:.3f}, all mean-ablated {metrics['ce_all_mean_ablated']:.3f}"
)
print(
    f"CE loss recovered: {metrics['ce_recovered_vs_zero']:.3f} (zero floor), {metrics['ce_recovered_vs_mean']:.3f} (mean floor)"
)
claim("ch07.min_fve", metrics["min_fve"])
claim("ch07.mean_l0", sum(metrics["l0_per_layer"]) / len(metrics["l0_per_layer"]))
claim("ch07.ce_recovered_mean", metrics["ce_recovered_vs_mean"])

# %% [markdown]
# **What to see:** every layer's transcoder explains at least {{claim:ch07.min_fve=0.96±0.01}} of
# its MLP's output variance with {{claim:ch07.mean_l0=15–16}} active features per token on average, and with all four MLPs
# replaced at once the model keeps {{claim:ch07.ce_recovered_mean=0.99}} of the loss it
# would lose if all four were replaced by their mean output (the mean floor; the zero floor,
# much lower, makes the number look better than it is). The rest — what the transcoders miss —
# will become the error nodes.
#
# # Part 2 — A prompt becomes a linear model
#
# Take one prompt. Run the model once and keep, for every layer, the attention patterns and the
# norms' scales (the `sqrt(variance + eps)` each LayerNorm divides by). Now replace each MLP's
# output by
#
# $$\text{MLP}(x) = \underbrace{f\,W_{dec} + b_{dec} + x\,W_{skip}}_{\text{transcoder}} + \underbrace{(\text{MLP}(x) - \text{transcoder}(x))}_{\text{error, a constant}}$$
#
# and hold the patterns, scales and errors fixed. On this prompt nothing has changed: it is the
# same forward pass. But every operation between two features is now linear: a frozen
# LayerNorm is "subtract the mean, divide by a fixed number, scale, shift"; frozen attention
# is a fixed weighted sum of value vectors; the skip is a matrix. And a feature's activation,
# where it fires, equals its pre-activation — a linear read of the residual stream. So every
# receiver (a feature, or the target logit) is exactly
#
# $$\text{value}_t = \sum_{s} A_{ts} + \text{bias}_t,$$
#
# a sum over **sources** s — the token embeddings, the features of earlier layers, the error
# nodes — of **direct effects** $A_{ts}$ (the part of t that s supplies along paths that pass
# through no other node), plus constants (the biases). `attribution.attribution_graph` computes the
# matrix. Let us look at a fact the toy language states: *a cat is an animal*.

# %%
fact_prompt = "a cat is an"
t0 = time.perf_counter()
fact = attribution.attribution_graph(model, tc, fact_prompt, "animal")
print(f"graph built in {time.perf_counter() - t0:.2f} s")
print(model.to_str_tokens(fact_prompt))
print(f"{fact.n_features} active features, {fact.n_nodes} nodes; target {fact.target_label} = {fact.values[-1]:.3f}")
claim("ch07.fact_features", fact.n_features)
logit = model(fact_prompt)[0, -1, model.tokenizer.encode("animal", add_special_tokens=False)[0]].item()
print(f"the model's own logit: {logit:.3f}")
err = attribution.exactness_error(fact)
print(f"largest |incoming edges + bias - value| over all receivers: {err:.1e}")
claim("ch07.exact_digits", -torch.log10(torch.tensor(err / fact.values.abs().max().item())).item())

# %% [markdown]
# **What to see:** the graph's target equals the model's logit, and for every receiver the
# incoming edges plus the bias give its value to about {{claim:ch07.exact_digits=11–17}}
# significant digits: float64 rounding, nothing else. That is what "exact under frozen attention"
# means. It does *not* mean the graph explains what attention does: the patterns are frozen
# inputs here, not nodes. Keep that in mind for the IOI prompt.
#
# ## Exercise 7.3 — the direct effect of one feature on another
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 15 minutes
#
# `replacement.frozen_forward(fm, embeddings, activations, errors)` runs the frozen model from given
# sources: `activations[l]` (pos, d_tc) is what layer l's features *write* — held as given,
# never recomputed from their inputs — and it returns every transcoder's pre-activations. Since
# the frozen model is linear, the direct effect of a source feature on a receiver is the
# receiver's pre-activation with the source present minus without it (every other source held
# fixed). Write it.


# %%
def direct_effect(
    fm: replacement.FrozenModel,
    embeddings: torch.Tensor,
    activations: list[torch.Tensor],
    errors: torch.Tensor,
    source: tuple[int, int, int],
    receiver: tuple[int, int, int],
) -> float:
    """The direct effect of feature `source` on feature `receiver` in the frozen model of one prompt.

    fm: the prompt's frozen model; embeddings (pos, d_model); activations: n_layers tensors (pos, d_tc),
    each feature's activation on the prompt; errors (n_layers, pos, d_model). source, receiver:
    (layer, pos, feature index). Returns a float: the part of the receiver's pre-activation the source supplies.
    """
    # BEGIN SOLUTION
    with_source, _ = replacement.frozen_forward(fm, embeddings, activations, list(errors))
    removed = [a.clone() for a in activations]
    removed[source[0]][source[1], source[2]] = 0
    without, _ = replacement.frozen_forward(fm, embeddings, removed, list(errors))
    layer, pos, index = receiver
    return (with_source[layer][pos, index] - without[layer][pos, index]).item()
    # END SOLUTION


ch07.check_direct_effect(direct_effect)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Two calls of `replacement.frozen_forward`: one with `activations` as given, one with the source's entry
# set to 0 (on a copy). The errors go in as a list: `list(errors)`.
# </details>
# <details><summary>Hint 2</summary>
#
# Why is this the *direct* effect? `frozen_forward` writes the activations it is given; it never
# recomputes a later feature from its input. So removing the source changes the receiver only
# along paths that avoid every other feature node.
# </details>
#
# Let us use it on the fact graph: the strongest edge between two features.


# %%
def activations_of(graph: attribution.Graph) -> list[torch.Tensor]:
    acts = [torch.zeros(graph.n_pos, tc.cfg.d_tc, dtype=torch.float64) for _ in range(graph.n_layers)]
    for (layer, pos, index), a in zip(graph.features.tolist(), graph.activations):
        acts[layer][pos, index] = a
    return acts


ff = fact.adjacency[: fact.n_features, : fact.n_features]
t, s = divmod(int(ff.abs().argmax()), fact.n_features)
mine = direct_effect(
    fact.frozen,
    fact.embeddings,
    activations_of(fact),
    fact.errors,
    tuple(fact.features[s].tolist()),
    tuple(fact.features[t].tolist()),
)
print(f"{fact.name(s)} -> {fact.name(t)}: yours {mine:+.4f}, the package's {fact.adjacency[t, s].item():+.4f}")

# %% [markdown]
# ## Exercise 7.4 — the adjacency matrix of one prompt
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵🔵 · about 30 minutes
#
# Now the whole matrix. The node order (the package's): the features (`features`, rows
# (layer, pos, index), sorted), then the error nodes (layer-major: node `n_features + l * pos + p`),
# then the embeddings (`n_features + n_layers * pos + p`), then the target. `A[t, s]` is the
# direct effect of source s on receiver t (rows receive). Sources are features, errors and
# embeddings; receivers are the features and the target (`logits[target_pos] @ target_weights`,
# returned by `frozen_forward` when you pass `target_weights`). Errors and embeddings receive
# nothing: their rows stay zero.


# %%
def adjacency_matrix(
    fm: replacement.FrozenModel,
    embeddings: torch.Tensor,
    activations: list[torch.Tensor],
    errors: torch.Tensor,
    features: torch.Tensor,
    target_weights: torch.Tensor,
    target_pos: int,
) -> torch.Tensor:
    """The prompt's adjacency matrix (n_nodes, n_nodes), float64, adjacency[t, s] = direct effect of s on t.

    embeddings (pos, d_model); activations: n_layers tensors (pos, d_tc); errors (n_layers, pos, d_model);
    features (n_features, 3) the active features' (layer, pos, index) in node order; target_weights
    (d_vocab,); target_pos: the position the target reads. n_nodes = n_features + (n_layers + 1) * pos + 1.
    """
    # BEGIN SOLUTION
    n_layers, n_pos, n_features = len(activations), len(embeddings), len(features)
    n = n_features + (n_layers + 1) * n_pos + 1
    rows = list(range(n_features)) + [n - 1]

    def receivers(acts, errs, emb):
        pres, target = replacement.frozen_forward(fm, emb, acts, list(errs), target_weights)
        feats = [pres[layer][pos, index] for layer, pos, index in features.tolist()]
        return torch.stack([*feats, target[target_pos]])

    base = receivers(activations, errors, embeddings)
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    for s, (layer, pos, index) in enumerate(features.tolist()):
        acts = [a.clone() for a in activations]
        acts[layer][pos, index] = 0
        adjacency[rows, s] = base - receivers(acts, errors, embeddings)
    for layer in range(n_layers):
        for pos in range(n_pos):
            errs = errors.clone()
            errs[layer, pos] = 0
            adjacency[rows, n_features + layer * n_pos + pos] = base - receivers(activations, errs, embeddings)
    for pos in range(n_pos):
        emb = embeddings.clone()
        emb[pos] = 0
        adjacency[rows, n_features + n_layers * n_pos + pos] = base - receivers(activations, errors, emb)
    return adjacency
    # END SOLUTION


ch07.check_adjacency_matrix(adjacency_matrix)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Write a helper that runs `frozen_forward` once and returns the receivers' values as one
# vector (every feature's pre-activation, then the target). Then each source's *column* is that
# vector minus the same vector with the source removed.
# </details>
# <details><summary>Hint 2</summary>
#
# Removing an error node: set `errors[l, p]` to zero (on a clone). Removing an embedding: set
# `embeddings[p]` to zero. Both are sources exactly like a feature.
# </details>
#
# Your matrix is built one source at a time: a forward pass per source. The package computes
# the same matrix the other way round — one *backward* sweep per batch of receivers, through
# the transposes of the frozen attention and norms — which is what scales to big models. Both
# must agree:

# %%
t0 = time.perf_counter()
mine = adjacency_matrix(
    fact.frozen, fact.embeddings, activations_of(fact), fact.errors, fact.features, fact.target_weights, fact.target_pos
)
t_mine = time.perf_counter() - t0
print(f"yours: {t_mine:.2f} s; largest difference from the package's: {(mine - fact.adjacency).abs().max():.1e}")

# %% [markdown]
# # Part 3 — Influence and pruning
#
# Even this five-token prompt has {{claim:ch07.fact_features=150–400}} active features.
# Most matter little. Ameisen et al. prune in two steps. First, **influence**: normalise the
# matrix so that each receiver's incoming |edges| sum to 1 (each edge becomes a *share* of
# what its receiver gets), then sum the shares along every path into the target:
# $B = \hat A + \hat A^2 + \hat A^3 + \dots$. Row `target` of B is each node's influence on the
# target. The series ends: the graph has no cycles, so $\hat A^k = 0$ beyond its depth.
#
# ## Exercise 7.5 — influence on the target
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Write it as two functions: `normalized_adjacency`, the shares Â (pruning and the strongest path
# use them too), and `influence`, the series.


# %%
def normalized_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """Â (n, n): |adjacency| with each row divided by its sum, so a receiver's incoming shares sum to 1.
    Rows that sum to 0 (sources) stay 0."""
    # BEGIN SOLUTION
    a = adjacency.abs()
    sums = a.sum(1, keepdim=True)
    return torch.where(sums > 0, a / sums.clamp_min(1e-300), torch.zeros((), dtype=a.dtype))
    # END SOLUTION


def influence(adjacency: torch.Tensor, target: int) -> torch.Tensor:
    """Each node's influence on node `target` (n,): row `target` of Â + Â² + Â³ + ..., where Â is
    `normalized_adjacency(adjacency)`. adjacency (n, n) is acyclic."""
    # BEGIN SOLUTION
    a_hat = normalized_adjacency(adjacency)
    total = torch.zeros(len(a_hat), dtype=a_hat.dtype)
    row = a_hat[target].clone()
    for _ in range(len(a_hat)):  # an acyclic graph is at most n deep: then the row is all zeros
        if not row.any():
            break
        total += row
        row = row @ a_hat
    return total
    # END SOLUTION


ch07.check_influence(influence)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Two small functions: first Â (`abs`, the row sums with `keepdim=True`, and `torch.where` so a
# row of zeros is not divided by zero), then the series. Don't build the matrix powers: keep one
# row vector, `row = Â[target]`, add it to the total,
# then `row = row @ Â`, until it is all zeros.
# </details>
#
# ## Exercise 7.6 — pruning
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪ · about 25 minutes
#
# Now the pruning of Ameisen et al., in the package's exact form:
# 1. **Nodes.** Sort the features by influence on the target; keep them in that order until
#    their cumulative influence reaches `node_threshold` of the features' total (the feature
#    that crosses the line is kept). Errors, embeddings and the target are not pruned as nodes.
# 2. **Edges.** On the graph of kept nodes (zero every edge to or from a dropped feature),
#    recompute the influences, set the target's to 1, and score each edge by its normalised
#    weight (Â) times the influence of its *receiver*. Keep edges in order of score until their
#    cumulative score reaches `edge_threshold` of the total (again, the one that crosses is
#    kept), and only edges with a non-zero weight.
# 3. **Tidy.** Drop every node (but the target) that no kept edge touches, and every edge that
#    touches a dropped node.


# %%
def prune_graph(
    adjacency: torch.Tensor, n_features: int, target: int, node_threshold: float, edge_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which nodes and edges survive pruning: (nodes (n,) bool, edges (n, n) bool, aligned with adjacency).

    adjacency (n, n): its first n_features nodes are features (the only nodes pruned in step 1);
    target: the target's node. Thresholds are fractions in (0, 1].
    """

    # BEGIN SOLUTION
    def keep_until(scores: torch.Tensor, threshold: float) -> torch.Tensor:
        keep = torch.zeros(len(scores), dtype=torch.bool)
        if scores.sum() <= 0:
            return keep
        order = scores.argsort(descending=True)
        cumulative = scores[order].cumsum(0) / scores.sum()
        keep[order[: int((cumulative < threshold).sum()) + 1]] = True
        return keep

    n = len(adjacency)
    nodes = torch.ones(n, dtype=torch.bool)
    nodes[:n_features] = keep_until(influence(adjacency, target)[:n_features], node_threshold)
    kept = adjacency * nodes[:, None] * nodes[None, :]
    receiver_influence = influence(kept, target)
    receiver_influence[target] = 1.0
    scores = normalized_adjacency(kept) * receiver_influence[:, None]
    edges = keep_until(scores.flatten(), edge_threshold).reshape(n, n) & (kept != 0)
    used = edges.any(0) | edges.any(1)
    used[target] = True
    return nodes & used, edges & used[:, None] & used[None, :]
    # END SOLUTION


ch07.check_prune_graph(prune_graph)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Both steps use the same helper: "sort descending, cumulative sum divided by the total, keep
# while below the threshold, plus one". `(cumulative < threshold).sum() + 1` is how many to keep.
# Your `influence` and `normalized_adjacency` from 7.5 do the rest (the package uses them too).
# </details>
# <details><summary>Hint 2</summary>
#
# Edge scores: `Â * influence[:, None]` — row t (the receiver) scaled by t's influence. Flatten
# to rank all edges together, then reshape the mask back to (n, n).
# </details>
#
# The package's `pruning.prune(graph)` returns the same masks with the graph and the influences
# attached, ready to draw. **Hover over the nodes**: each feature shows its activation, its
# influence on the target, and the contexts where it fires most in a small set of toy-language
# texts (`feature_contexts.FeatureContexts`, built once from 120 documents). Nodes sit at their position
# (x) and layer (y); edges are blue when they push the receiver up, red when down, wider when
# stronger. Grey squares are error nodes, green diamonds embeddings.

# %%
contexts = feature_contexts.FeatureContexts(model, tc)
fact_pruned = pruning.prune(fact)
print(f"kept {fact_pruned.n_kept_features} of {fact.n_features} features and {int(fact_pruned.edges.sum())} edges")
graph_plot.graph_figure(fact_pruned, contexts, title="a cat is an → animal")

# %% [markdown]
# The same graph as a static picture (it stays in a saved notebook, and renders anywhere) and
# as text:

# %%
display(SVG(graph_plot.graph_svg(fact_pruned)))
print(graph_plot.graph_text(fact_pruned, contexts, k=8))

# %% [markdown]
# # Part 4 — What are the features?
#
# A graph of "L1 F402" and "L2 F77" explains nothing until the features have names. Our
# generator knows every word's category (name, place, animal, number, …) and, in IOI
# sentences, every name's role (S1, IO, S2, END), so we can label a feature by what its
# strongest activations sit on — `digsite.sae.token_labels`, from chapter 4, gives each token
# its label. (A label is a hypothesis about the feature, not its definition: read the contexts.)
#
# ## Exercise 7.7 — labelling a feature against the grammar
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def feature_label(acts: torch.Tensor, labels: list[list[str]], top_k: int) -> tuple[str, float]:
    """The most common label among a feature's top_k largest activations, and its share of them.

    acts (n_seq, pos): the feature's activation on every token; labels: n_seq lists of pos labels.
    Count only tokens where the feature fires (> 0); the share is over the tokens counted. Ties go to
    the label met first in order of decreasing activation. A feature that never fires: ("", 0.0).
    """
    # BEGIN SOLUTION
    values, flat = acts.flatten().topk(min(top_k, acts.numel()))
    counts: dict[str, int] = {}
    for value, index in zip(values.tolist(), flat.tolist()):
        if value <= 0:
            break
        label = labels[index // acts.shape[1]][index % acts.shape[1]]
        counts[label] = counts.get(label, 0) + 1
    if not counts:
        return "", 0.0
    best = max(counts, key=lambda label: counts[label])
    return best, counts[best] / sum(counts.values())
    # END SOLUTION


ch07.check_feature_label(feature_label)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `acts.flatten().topk(top_k)` gives values and flat indices; `divmod(index, pos)` turns a flat
# index into (sequence, position). A dict keeps insertion order, and `max` returns the first
# maximum, so counting in order of decreasing activation settles ties as asked.
# </details>
#
# Label every kept feature of the fact graph twice: by the token it fires on, and by the word
# that *follows* it in the text — for a feature near the output, what comes next is often the
# better description (it says what the feature helps predict).

# %%
labels = [token_labels(row) for row in contexts.str_tokens]
next_words = [[t.strip() for t in row[1:]] + ["(end)"] for row in contexts.str_tokens]
before_animal = 0
for i in fact_pruned.nodes[: fact.n_features].nonzero()[:, 0].tolist():
    _, layer, pos, index = fact.node(i)
    acts = contexts.activations(layer, index)
    label, share = feature_contexts.label_feature(acts, labels, top_k=20)  # the package's version of your feature_label
    nxt, nshare = feature_contexts.label_feature(acts, next_words, top_k=20)
    before_animal += pos == fact.target_pos and nxt == "animal" and nshare >= 0.5
    print(
        f"{fact.name(i):26s} influence {fact_pruned.influence[i]:.3f}   fires on: {label} ({share:.0%}), "
        f"next word: {nxt} ({nshare:.0%})"
    )
print(f"kept features at the last position whose next word is mostly 'animal': {before_animal}")
claim("ch07.before_animal", before_animal)

# %% [markdown]
# **What to see:** the features at "cat" fire on animal words (a category the grammar defines),
# features at "is" on "is"; most features at the last position fire on "a"/"an", which says
# little — but their *next word* tells more: {{claim:ch07.before_animal=1–15}} of them fire mostly
# right before "animal", i.e. in "<animal> is an" contexts. Read a few in the figure's hover
# boxes. The grammar tells you what *could* be represented; the graph what this prompt *uses*.
#
# # Part 5 — Testing the graph by intervention
#
# A graph is a claim about causes, so test it: switch features off (or turn them up) and see
# whether the target moves as the graph says. The graph's **prediction** is linear: multiply
# feature s by `factor` and it moves by `(factor − 1) · a_s`; every later feature moves by its
# incoming edges *per unit of source* (`A[t, s] / a_s`) times its sources' moves; and so on up to
# the target.
#
# ## Exercise 7.8 — the graph's prediction of an intervention
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 20 minutes


# %%
def predict_intervention(
    adjacency: torch.Tensor, values: torch.Tensor, n_features: int, target: int, nodes: list[int], factor: float
) -> float:
    """The change of the target the graph predicts when features `nodes` are multiplied by `factor`.

    adjacency (n, n); values (n,): the first n_features entries are the features' activations; target:
    the target's node; nodes: feature nodes to edit (held at their edited value). Errors and embeddings
    never move. Returns a float.
    """
    # BEGIN SOLUTION
    n = len(adjacency)
    acts = values[:n_features]
    per_unit = torch.zeros_like(adjacency)
    per_unit[:, :n_features] = adjacency[:, :n_features] / torch.where(acts != 0, acts, torch.ones_like(acts))
    edited = torch.tensor(nodes, dtype=torch.long)
    change = torch.zeros(n, dtype=adjacency.dtype)
    change[edited] = (factor - 1.0) * values[edited]
    for _ in range(n):  # at most the graph's depth: then the changes have reached the target
        new = per_unit @ change
        new[edited] = change[edited]
        if torch.equal(new, change):
            break
        change = new
    return change[target].item()
    # END SOLUTION


ch07.check_predict_intervention(predict_intervention)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Divide each *feature column* of the adjacency by that feature's activation: the effect per
# unit. Zero the error and embedding columns (they never move).
# </details>
# <details><summary>Hint 2</summary>
#
# Propagate a vector of changes: `change = per_unit @ change`, then put the edited features back
# to their fixed change, repeated as many times as the graph is deep (more is harmless).
# </details>
#
# Now the **actual** change: `interventions.actual_change` runs the replacement model (transcoders plus the
# graph's error vectors — unedited, it *is* the model on this prompt) with the features edited,
# and reads the target. It can hold more or less fixed, which tells you *what* the graph misses:
# `freeze="all"` keeps attention patterns, norm scales and the set of firing features as they
# were (the graph's own linear world: the prediction must be exact); `"patterns+norms"` lets TopK
# choose features afresh; `"norms"` also lets the attention patterns respond, `"patterns"` the
# norms' scales instead; `"none"` lets everything respond — the real test. `interventions.faithfulness`
# ablates each of the 8 most influential features alone (clamping them to 0), then all 8 together, and scores the
# agreement: 1 − Σ|predicted − actual| / Σ|actual| (1 is perfect; 0 is no better than predicting
# nothing).

# %%
top = pruning.influence_on(fact.adjacency, fact.target_index)[: fact.n_features].argsort(descending=True)[:3].tolist()
mine = predict_intervention(fact.adjacency, fact.values, fact.n_features, fact.target_index, top, 0.0)
print(
    f"ablating {[fact.name(i) for i in top]}: yours {mine:+.3f}, the package's {interventions.predicted_change(fact, top):+.3f}"
)
fact_faith = {
    freeze: interventions.faithfulness(model, tc, fact, n=8, freeze=freeze) for freeze in interventions.FREEZE_LEVELS
}
for freeze, r in fact_faith.items():
    print(f"freeze={freeze:15s} faithfulness {r['faithfulness']:+.3f}")
r = fact_faith["none"]
ratio = torch.tensor(r["actual"][:-1]) / torch.tensor(r["predicted"][:-1])
print(f"nothing frozen: actual / predicted for the single ablations, median {ratio.median():.2f}")
claim("ch07.fact_faith_all", fact_faith["all"]["faithfulness"])
claim("ch07.fact_faith_pn", fact_faith["patterns+norms"]["faithfulness"])
claim("ch07.fact_faith_norms", fact_faith["norms"]["faithfulness"])
claim("ch07.fact_faith_patterns", fact_faith["patterns"]["faithfulness"])
claim("ch07.fact_faith_none", fact_faith["none"]["faithfulness"])
claim("ch07.fact_ratio", ratio.median().item())
plot.scatter(
    torch.tensor(r["predicted"]),
    torch.tensor(r["actual"]),
    xlabel="predicted change of the logit",
    ylabel="actual change (nothing frozen)",
    title="a cat is an → animal: ablating the top features",
)

# %% [markdown]
# **What to see:** with everything frozen the prediction is exact (faithfulness
# {{claim:ch07.fact_faith_all=1.000}}): the graph is a faithful account of its own linear world.
# Let TopK choose the features afresh and it barely moves ({{claim:ch07.fact_faith_pn=0.94±0.03}}),
# and letting the attention patterns respond costs little more ({{claim:ch07.fact_faith_norms=0.8±0.1}}
# with only the norms frozen). But let the norms' scales respond and it collapses:
# {{claim:ch07.fact_faith_patterns=0.15±0.15}} with the patterns frozen, {{claim:ch07.fact_faith_none=0.0±0.15}}
# with nothing frozen. The points in the figure lie on a line *below* the diagonal's slope: the
# real effects have the graph's sign and order, at about {{claim:ch07.fact_ratio=0.3±0.1}} of its
# size. Why? These features sit at the last position, just before the final LayerNorm. Switch a
# strong one off and the residual stream there gets shorter, the norm divides by a smaller
# number, and everything left in the stream — including the rest of "animal" — is scaled up,
# making up much of the loss. The graph, with its scale frozen, cannot see that. In this small
# model the norms, not attention, are the graph's biggest blind spot for these interventions.
#
# # Part 6 — Capstone: two prompts, traced end to end
#
# ## Exercise 7.9 — the strongest path
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 20 minutes
#
# To describe a graph in a sentence, start from its strongest path: the chain of nodes from an
# input token to the target whose *shares* (normalised edge weights, Â) multiply to the largest
# number. Walking back from the target along the strongest edge is greedy and can miss it;
# compute instead, for every node, the best product from it to the target (dynamic programming
# over the acyclic graph), then follow the best choices from the best source.


# %%
def strongest_path(adjacency: torch.Tensor, target: int, sources: list[int]) -> list[int]:
    """The max-product path from one of `sources` to `target`, as node indices from source to target.

    The weight of an edge is its share Â[t, s] = |A[t, s]| / sum_s' |A[t, s']|. Ties go to the lower
    node index. adjacency (n, n) is acyclic.
    """
    # BEGIN SOLUTION
    a_hat = normalized_adjacency(adjacency)
    n = len(a_hat)
    best = torch.zeros(n, dtype=a_hat.dtype)
    best[target] = 1.0
    step = torch.full((n,), -1, dtype=torch.long)
    for _ in range(n):
        through, receiver = (a_hat * best[:, None]).max(0)  # best product via each possible next node
        through[target] = 1.0
        better = through > best
        if not better.any():
            break
        best, step = torch.where(better, through, best), torch.where(better, receiver, step)
    srcs = torch.tensor(sources)
    node = int(srcs[best[srcs].argmax()])
    path = [node]
    while node != target:
        node = int(step[node])
        path.append(node)
    return path
    # END SOLUTION


ch07.check_strongest_path(strongest_path)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `best[s]` = the largest product of shares on any path from s to the target; `best[target] = 1`.
# Then `best[s] = max_t Â[t, s] · best[t]` — in tensors, `(Â * best[:, None]).max(0)`. Repeat
# until nothing changes (at most n times); remember which t achieved each maximum.
# </details>
# <details><summary>Hint 2</summary>
#
# Only replace a node's best value when the new one is strictly larger: that keeps the lower index
# on ties (`max` returns the first maximum).
# </details>
#
# ### The fact: "a cat is an" → animal

# %%
direct = fact.adjacency[fact.target_index, fact.embedding_index(2)].item()
print(f"direct edge from the embedding of 'cat' to the target: {direct:+.2f}")
cat_features = [i for i in range(fact.n_features) if fact.node(i)[2] == 2]
print(" -> ".join(fact.name(i) for i in strongest_path(fact.adjacency, fact.target_index, cat_features)))
hub = int(fact_pruned.influence[: fact.n_features].argmax())  # the feature with the most influence on the target
path = pruning.strongest_path(fact.adjacency, hub, cat_features) + [fact.target_index]
print(" -> ".join(fact.name(i) for i in path))
for i in path[:-1]:
    _, layer, pos, index = fact.node(i)
    print(
        f"  {fact.name(i):24s} fires on: {feature_contexts.label_feature(contexts.activations(layer, index), labels, 20)}"
    )
_, layer0, _, index0 = fact.node(path[0])
first = contexts.activations(layer0, index0)
top20 = first.flatten().topk(20).indices.tolist()
animal_share = sum(labels[i // first.shape[1]][i % first.shape[1]] == "animal (member)" for i in top20) / 20
print(f"share of the first feature's top 20 activations on animal words: {animal_share:.2f}")
claim("ch07.path_first_animal", animal_share)

# %% [markdown]
# Products of shares favour short paths: the strongest path from the features at "cat" jumps
# straight to the target, through frozen attention (a head at the last position reads "cat"'s
# position and writes toward "animal"). The second line asks a sharper question: how do the
# features at "cat" reach the graph's most influential feature, the one at the last position
# that fires right before "animal"? A hypothesis to test: features at "cat" mark it as an
# animal; attention carries them to the last position, where features of "<animal> is a/an"
# raise "animal". Test it: ablate every feature at "cat" and compare with the prediction,
# freezing less and less. (Look at the labels first: only {{claim:ch07.path_first_animal=0.0–0.5}}
# of the first feature's strongest activations are on animal words. The strongest path is not
# always the most readable one; the graph's hover boxes show other features at "cat" that do
# fire on animals.)

# %%
for freeze in interventions.FREEZE_LEVELS:
    pred = interventions.predicted_change(fact, cat_features)
    act = interventions.actual_change(model, tc, fact, cat_features, freeze=freeze)
    print(
        f"ablate the {len(cat_features)} features at 'cat', freeze={freeze:15s}: predicted {pred:+.3f}, actual {act:+.3f}"
    )
cat_none = interventions.actual_change(model, tc, fact, cat_features, freeze="none")
claim("ch07.cat_pred", interventions.predicted_change(fact, cat_features))
claim("ch07.cat_none", cat_none)

# %% [markdown]
# **What to see:** the graph predicts that removing the features at "cat" costs
# {{claim:ch07.cat_pred=-1.3±0.3}} of the logit, and in its frozen world that is what happens.
# With nothing frozen the loss is {{claim:ch07.cat_none=-0.4±0.3}}. In between the numbers do
# not even move in one direction: freeze only the norms and the loss is several times larger —
# the attention patterns at the last position change when "cat" loses its features — and the
# live norms' rescaling then hides most of it. Two nonlinearities the graph holds fixed, pulling
# opposite ways. This is the lesson to take to real graphs: a clean path in the graph is a
# hypothesis about what *can* carry the answer; only interventions in the live model say what
# *does*, and how much.

# %% [markdown]
# ### Indirect objects: "When Mary and John went to the store, John gave a drink to" → Mary
#
# The same prompt as chapter 3, with the target chapter 3 used: the logit difference
# logit(Mary) − logit(John).

# %%
ioi_prompt = "When Mary and John went to the store, John gave a drink to"
t0 = time.perf_counter()
ioi = attribution.attribution_graph(model, tc, ioi_prompt, ("Mary", "John"))
t_ioi = time.perf_counter() - t0
ioi_pruned = pruning.prune(ioi)
print(
    f"{ioi.n_pos} tokens, {ioi.n_features} active features, built in {t_ioi:.1f} s; "
    f"kept {ioi_pruned.n_kept_features} features"
)
print(f"logit difference {ioi.values[-1]:.2f}; exactness error {attribution.exactness_error(ioi):.1e}")
print(graph_plot.graph_text(ioi_pruned, contexts, k=8))
graph_plot.graph_figure(ioi_pruned, contexts, title="IOI: logit(Mary) − logit(John)")

# %% [markdown]
# Where does the logit difference come from? Sum the target's incoming edges by kind of source:

# %%
row = ioi.adjacency[ioi.target_index]
n_f, n_p, n_l = ioi.n_features, ioi.n_pos, ioi.n_layers
parts = {
    "features": row[:n_f].sum(),
    "errors": row[n_f : n_f + n_l * n_p].sum(),
    "embeddings": row[n_f + n_l * n_p : -1].sum(),
    "bias": ioi.bias[-1],
}
for name, v in parts.items():
    print(f"{name:10s} {v.item():+7.2f}")
emb_row = row[n_f + n_l * n_p : -1]
print(
    "direct edges from the embeddings, by token:",
    ", ".join(
        f"{ioi.str_tokens[p].strip()} {emb_row[p]:+.2f}" for p in emb_row.abs().argsort(descending=True)[:4].tolist()
    ),
)
ioi_faith = {
    freeze: interventions.faithfulness(model, tc, ioi, n=8, freeze=freeze) for freeze in interventions.FREEZE_LEVELS
}
for freeze, r in ioi_faith.items():
    print(f"freeze={freeze:15s} faithfulness {r['faithfulness']:+.3f}")
claim("ch07.ioi_emb_mary", emb_row[2].item())
claim("ch07.ioi_faith_pn", ioi_faith["patterns+norms"]["faithfulness"])
claim("ch07.ioi_faith_norms", ioi_faith["norms"]["faithfulness"])
claim("ch07.ioi_faith_patterns", ioi_faith["patterns"]["faithfulness"])
claim("ch07.ioi_faith_none", ioi_faith["none"]["faithfulness"])

# %% [markdown]
# **What to see, and how it compares with chapter 3.** The strongest single edge into the
# target comes straight from the embedding of "Mary" ({{claim:ch07.ioi_emb_mary=5.0±0.5}}), and
# "Mary"'s embedding also feeds many layer-3 features at "to" that raise her logit. With the
# patterns frozen, a head that attends from "to" to Mary is a fixed linear map from Mary's
# embedding to the end: that is chapter 3's **name movers** (2.0, 2.2, 3.2), seen from the value
# side — *what* they move. What the graph cannot show is *why* they attend to Mary and not John:
# chapter 3's path patching found head 0.3 carrying "the subject is John" to the end, where it
# steers the movers' **queries**. Queries and keys set the patterns, and the graph takes the
# patterns as given. So the two pictures are complementary: patching asked which components
# matter, including through where heads look; the graph asks, given where every head looks,
# which features carry the answer.
#
# The interventions show that blind spot at work. Freeze patterns and norms and the graph
# predicts the ablations well ({{claim:ch07.ioi_faith_pn=0.96±0.03}}). Let either respond and
# faithfulness drops to about two thirds — {{claim:ch07.ioi_faith_norms=0.65±0.1}} with only the
# norms frozen, {{claim:ch07.ioi_faith_patterns=0.63±0.1}} with only the patterns frozen — and
# with nothing frozen it is {{claim:ch07.ioi_faith_none=0.55±0.1}}. Unlike the fact prompt, here
# the attention patterns matter as much as the norms: the features at "to" feed the heads'
# queries as well as the logit, and ablating them changes where the name movers look. To find the
# features that encode *which name is repeated*, try ablating the features at the second "John"
# (position 10) with `freeze="none"` and with `freeze="patterns"`, and compare.
#
# Your turn: pick another IOI prompt (`digsite.organisms.data.ioi_prompts`) or a fact
# ("Paris is in" → France; "three plus four is" → seven), build its graph, find the strongest
# path, label the features on it, and test it with `interventions.faithfulness`. Write down the story first,
# then the test.

# %%
t_total = time.process_time() - t_start
print(f"CPU time for this notebook: {t_total:.0f} s")

# %% [markdown]
# ## Try it on a bigger model
#
# Attribution graphs for real models need transcoders trained on them: the open-source
# `circuit-tracer` library (Hanna, Piotrowski et al. 2025) ships them for Gemma-2-2B and
# Llama-3.2-1B, with the same graph, pruning and intervention steps as this chapter, and
# Neuronpedia hosts interactive graphs you can explore in a browser. Both need a download of a
# few GB (and a GPU for graphs of any length), so this chapter has no offline GPT-2 cell: the
# package's `digsite.transcoders.train_and_save` could train GPT-2 transcoders with the same
# recipe, in hours rather than minutes on a CPU.
#
# ## Summary
#
# - A transcoder is a sparse, readable MLP; with error nodes it reproduces the model exactly on
#   one prompt, and with frozen attention and norms the whole model becomes linear in its features.
# - Every edge is a direct effect; each receiver is the sum of its incoming edges plus a bias, to
#   float precision. Influence sums shares over paths; pruning keeps the few nodes and edges that
#   carry it.
# - Features get hypotheses for names from their top contexts and the grammar's labels.
# - A graph is tested by intervention: exact in its own frozen world, and only as faithful in the
#   real model as attention and the norms let it be. Stored knowledge (facts) suits it; routing by
#   attention (IOI) is its blind spot, where chapter 3's patching still answers.
#
# To list what passes in your copy of this notebook: `python -m digsite.progress chapters/07_feature_circuits.ipynb`.
