# %% [markdown]
# # Chapter 3 — Activation patching, attribution patching and finding a circuit automatically
#
# *Want to know whether component X causes behaviour Y? Replace X's output with its output on a
# different input, and watch Y.* That one idea — **activation patching** — is the workhorse of
# circuit-finding. In this chapter you use it to find the circuit with which the course's
# toy-language model solves **indirect-object identification** (IOI):
#
# > When Mary and John went to the store, John gave a drink to → **Mary**
#
# Unlike in a real model, here we know the task exactly: the data generator
# (`digsite.organisms.data`) wrote every IOI sentence by one rule — *the answer is the name of
# the first clause that is not repeated*. That fixes *what* the model must compute, not *how*:
# the circuit it learned is not written down anywhere, and everything this chapter says about it
# is inferred from measurements. Knowing the rule lets us build a hypothesis and test it.
#
# **Goals**
# - Build clean and corrupted prompts and a logit-difference metric normalised so that
#   1 = clean and 0 = corrupt; know why the corruption must change what the metric measures.
# - Patch the residual stream over layer × position, head outputs over layer × head, and a
#   head's queries, keys, values and pattern separately, to see *how* a head's behaviour arises.
# - Path-patch from a sender head to the receivers' queries.
# - Approximate all of that with one backward pass (attribution patching), and see where the
#   approximation is wrong.
# - Find the circuit automatically with an ACDC-style pruning loop you write yourself, measure
#   its faithfulness, compare it with a hypothesis built from the task rule — and see how zero,
#   mean and resample ablation change the answer.
# - Optional, the hardest part: write a batched sweep and path patching from scratch, hold the
#   circuit to Wang et al.'s faithfulness, completeness and minimality, compare noising with
#   denoising, and test whether the model repairs itself when its top name mover is knocked out.
#
# **Prerequisites:** chapter 1 (hooks, `run_with_cache`, `run_with_hooks`, attention patterns);
# chapter 2 helps (logit attribution).
#
# **Time:** about 3 hours for sections 1–6; about 3 more for the optional section 7 (exercises 3.10–3.13).
#
# **Readings**
# - Wang et al., [*Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small*](https://arxiv.org/abs/2211.00593) (2022) —
#   the IOI circuit, path patching, faithfulness.
# - Heimersheim & Nanda, [*How to use and interpret activation patching*](https://arxiv.org/abs/2404.15255) (2024) —
#   denoising vs noising, metrics, pitfalls.
# - Nanda, [*Attribution Patching: Activation Patching At Industrial Scale*](https://www.neelnanda.io/mechanistic-interpretability/attribution-patching) (2023);
#   Syed, Rager & Conmy, [*Attribution Patching Outperforms Automated Circuit Discovery*](https://arxiv.org/abs/2310.10348) (2023).
# - Conmy et al., [*Towards Automated Circuit Discovery for Mechanistic Interpretability*](https://arxiv.org/abs/2304.14997) (ACDC, 2023).
# - Zhang & Nanda, [*Towards Best Practices of Activation Patching in Language Models*](https://arxiv.org/abs/2309.16042) (2023) — metrics and ablation choices.

# %%
import time

import plotly.graph_objects as go
import torch

from digsite import load_model, plot
from digsite import patching as P
from digsite.checks import ch03
from digsite.claims import claim
from digsite.hooks import Hook, HookedModel
from digsite.nodes import Node, all_nodes
from digsite.notebook import online, setup
from digsite.threads import one_thread

device = setup(seed=0)
print("Running on", device)

# %% [markdown]
# ## 1. Clean and corrupted prompts
#
# We load the `toylang` organism (4 layers, 4 heads per layer, 128 wide; GPT-2 architecture)
# and 32 held-out IOI prompts of one template, all 15 tokens long, with the indirect object
# (IO) named first — so every role sits at the same position in every prompt, and a
# layer × position plot means the same thing for each. Prompts from `ioi_prompts` come with an
# **ABC corruption**: the subject's two mentions replaced by two other names.
# `P.ioi_data` also builds the **name-swap** corruption: only the second mention of the subject
# (S2) changes, to the IO, so the right answer flips.

# %%
model = load_model("toylang", device=device)
data = P.ioi_data(model, n=32, seed=0)
p = data.prompts[0]
print("clean:  ", p.text, "→", p.io)
print("ABC:    ", p.corrupt_text)
print("swap:   ", model.to_string(data.corrupt[0, 1:]))
print("roles:  ", data.labels)

# %% [markdown]
# ## Exercise 3.1 — the logit difference
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 5 minutes
#
# The metric that IOI work uses is the **logit difference** `logit(IO) − logit(S)` at the last
# position: how much more the model wants the right name than the wrong one. It is a
# difference of logits, so it ignores anything that shifts every logit equally, and it is linear
# in the final residual stream — both help later.


# %%
def logit_diff(logits: torch.Tensor, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """logit(IO) - logit(S) at the last position, one value per prompt.

    logits: (batch, pos, d_vocab); io, s: (batch,) token ids. Returns (batch,).
    """
    # BEGIN SOLUTION
    last = logits[:, -1]
    return last.gather(-1, io[:, None]).squeeze(-1) - last.gather(-1, s[:, None]).squeeze(-1)
    # END SOLUTION


ch03.check_logit_diff(logit_diff)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Take `logits[:, -1]` (batch, d_vocab), then pick one entry per row with
# `.gather(-1, io[:, None])` (or `last[torch.arange(batch), io]`).
# </details>
#
# Now measure it on the clean prompts and on both corruptions:

# %%
with torch.no_grad():
    ld = {
        name: logit_diff(model(tokens), data.io, data.s).mean().item()
        for name, tokens in [("clean", data.clean), ("ABC", data.abc), ("swap", data.corrupt)]
    }
print(", ".join(f"{name}: {value:+.2f}" for name, value in ld.items()))
claim("ch03.ld_clean", ld["clean"])
claim("ch03.odds_clean", torch.tensor(ld["clean"]).exp())
claim("ch03.ld_abc", ld["ABC"])
claim("ch03.ld_swap", ld["swap"])
claim("ch03.ld_gap", ld["clean"] - ld["swap"])

# %% [markdown]
# The model is sure on the clean prompts (+{{claim:ch03.ld_clean=10.95}}: about {{claim:ch03.odds_clean=57,000±2,000}} times likelier to say the IO).
# But look at the ABC corruption: **+{{claim:ch03.ld_abc=10.79}}**, nearly the same! In "When Mary and Nina went to the
# store, Ben gave a drink to" the model hesitates between Mary and Nina — but the metric compares
# Mary with *John*, who is not in the sentence at all, so his logit is low anyway. A corruption
# is only useful if it moves the metric: from ABC to clean, `logit(IO) − logit(S)` barely
# changes, so patching between them would divide by almost nothing. (Wang et al. use ABC with
# *all three* names replaced, where the clean IO is absent too.) The name-swap corruption flips
# the answer to John ({{claim:ch03.ld_swap=−10.56}}): a gap of {{claim:ch03.ld_gap=21.5}} to work with. We patch between clean and swap;
# ABC comes back in section 6, as a distribution to ablate with.
#
# ## Exercise 3.2 — normalise the metric
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Raw logit differences are hard to compare across prompts and models. Normalise: map the
# corrupt run's value to 0 and the clean run's to 1, linearly. Then "this patch scores 0.8"
# reads "it restores 80% of the clean behaviour".


# %%
def normalise(ld: torch.Tensor, clean_ld: float, corrupt_ld: float) -> torch.Tensor:
    """Map logit differences linearly so that clean_ld -> 1 and corrupt_ld -> 0. ld: any shape."""
    # BEGIN SOLUTION
    return (ld - corrupt_ld) / (clean_ld - corrupt_ld)
    # END SOLUTION


ch03.check_normalise(normalise)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Subtract the value that must become 0, then divide by the distance between the two ends.
# </details>
#
# With it, the metric every sweep below uses is one function of the logits:

# %%
clean_ld, corrupt_ld = ld["clean"], ld["swap"]


def metric(logits: torch.Tensor) -> torch.Tensor:
    """Normalised logit difference, averaged over the prompts: 1 = clean, 0 = corrupt (swap).

    logits: (k * 32, pos, d_vocab), k copies of the 32 prompts in order (the batched sweeps stack them).
    """
    k = logits.shape[0] // data.io.shape[0]
    return normalise(logit_diff(logits, data.io.repeat(k), data.s.repeat(k)), clean_ld, corrupt_ld).mean()


with torch.no_grad():
    print(f"clean: {metric(model(data.clean)):.3f}, corrupt: {metric(model(data.corrupt)):.3f}")

# %% [markdown]
# ## 2. Patching the residual stream
#
# **Denoising**: run the *corrupt* prompt, and at one site put back the activation from the
# *clean* run. If the metric comes back, that site carried the information that distinguishes
# clean from corrupt. (The opposite, **noising** — run clean, patch in corrupt — asks whether a
# site is *necessary*; the two differ when the model has backups, see Heimersheim & Nanda.)
#
# ## Exercise 3.3 — a residual-stream patching hook
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# A hook on `blocks.{l}.hook_resid_pre` receives the residual stream (batch, pos, d_model). Write
# one that replaces a single position with the clean run's vector there.


# %%
def patch_resid_hook(resid: torch.Tensor, hook: Hook, pos: int, clean_cache) -> torch.Tensor:
    """Return resid (batch, pos, d_model) with position `pos` taken from clean_cache[hook.name].

    clean_cache maps hook names to activations of the same shape. Do not modify other positions.
    """
    # BEGIN SOLUTION
    resid = resid.clone()
    resid[:, pos] = clean_cache[hook.name][:, pos]
    return resid
    # END SOLUTION


ch03.check_patch_resid_hook(patch_resid_hook)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Clone first (never edit the activation in place unless you mean to), then
# `resid[:, pos] = clean_cache[hook.name][:, pos]`. `hook.name` tells you which cached tensor to read.
# </details>
#
# ## Exercise 3.4 — one denoising patch
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 10 minutes
#
# Put it together: cache the clean run, run the corrupt tokens with your hook on
# `blocks.{layer}.hook_resid_pre`, return the metric. Mind the direction: clean activations
# go *into* the corrupt run.


# %%
def patch_resid_once(
    model: HookedModel, clean_tokens: torch.Tensor, corrupt_tokens: torch.Tensor, layer: int, pos: int, metric
) -> float:
    """The metric of the corrupt run with blocks.{layer}.hook_resid_pre at `pos` patched from the clean run.

    clean_tokens, corrupt_tokens: (batch, pos). metric: logits (batch, pos, d_vocab) -> scalar tensor.
    """
    # BEGIN SOLUTION
    name = f"blocks.{layer}.hook_resid_pre"
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=[name])

    def hook(resid: torch.Tensor, hook: Hook) -> torch.Tensor:
        return patch_resid_hook(resid, hook, pos, clean_cache)

    with torch.no_grad():
        return float(metric(model.run_with_hooks(corrupt_tokens, fwd_hooks=[(name, hook)])))
    # END SOLUTION


ch03.check_patch_resid_once(patch_resid_once)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Two runs: one of the clean tokens that caches `blocks.{layer}.hook_resid_pre`, one of the
# corrupt tokens with your hook from exercise 3.3 on that name; the metric of the second's logits.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `model.run_with_cache(clean_tokens, names_filter=[name])` gives the clean cache; then
# `model.run_with_hooks(corrupt_tokens, fwd_hooks=[(name, lambda r, h: patch_resid_hook(r, h, pos, cache))])`.
# Patching corrupt into clean answers a different question (noising) and gives different numbers.
# </details>
#
# A full sweep is 4 layers × 15 positions = 60 of these. `P.resid_sweep` does the same thing
# *batched*: it stacks many copies of the corrupt batch, patches a different (layer, position)
# into each copy, and runs them in a few forward passes. It also skips work that cannot change
# anything: below the patched layer every copy computes exactly the corrupt run, so it starts
# from the cached corrupt residual stream there; and a patch whose clean and corrupt
# activations are identical (every position before S2 here, since the prompts agree up to it)
# is not run at all. Attention is causal, so a patch at position 12 cannot change positions
# 0–11 either: the sweep runs only the positions from the first change on, and hands the
# attention the corrupt run's keys and values for the positions before (the key-value cache
# that makes text generation fast). The values are identical to your loop — check a few:

# %%
resid = P.resid_sweep(model, data.corrupt, data.clean, metric)
for layer, pos in [(0, 10), (1, 14), (2, 10)]:
    print(
        f"layer {layer}, position {pos}: yours {patch_resid_once(model, data.clean, data.corrupt, layer, pos, metric):.4f}, "
        f"batched {resid[layer, pos]:.4f}"
    )
plot.imshow(
    resid,
    x=data.labels,
    y=[f"resid_pre {l}" for l in range(model.cfg.n_layers)],
    xlabel="position",
    ylabel="layer",
    title="Denoising the residual stream (1 = clean, 0 = corrupt)",
    zmax=1,
)

# %% [markdown]
# How much faster is it? Time your kind of loop (`P.patch_loop`, one forward pass per patch)
# against the batched sweep with its savings switched on one at a time:

# %%
names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
_, clean_resid = model.run_with_cache(data.clean, names_filter=names)
patches = [P.Patch(name, (pos,)) for name in names for pos in range(data.clean.shape[1])]
variants = {
    "one patch per forward": lambda: P.patch_loop(model, data.corrupt, clean_resid, patches, metric),
    "batched": lambda: P.patch_sweep(
        model, data.corrupt, clean_resid, patches, metric, reuse_prefix=False, skip_noops=False, reuse_positions=False
    ),
    "+ reuse the corrupt run below the patch": lambda: P.patch_sweep(
        model, data.corrupt, clean_resid, patches, metric, skip_noops=False, reuse_positions=False
    ),
    "+ skip patches that change nothing": lambda: P.patch_sweep(
        model, data.corrupt, clean_resid, patches, metric, reuse_positions=False
    ),
    "+ reuse the positions before the patch": lambda: P.patch_sweep(model, data.corrupt, clean_resid, patches, metric),
}
seconds, results = {}, {}
with one_thread():  # one thread: the timings then measure the work, not threads waiting on each other
    for label, run in variants.items():
        start = time.process_time()
        results[label] = run()
        seconds[label] = time.process_time() - start
for label in variants:
    print(
        f"{label:42s} {seconds[label]:5.2f} s CPU  max |difference| from the loop "
        f"{(results[label] - results['one patch per forward']).abs().max():.1e}"
    )
loop = seconds["one patch per forward"]
claim("ch03.speedup_full", loop / seconds["+ reuse the positions before the patch"])
claim("ch03.speedup_batched", loop / seconds["batched"])
claim("ch03.speedup_skip", loop / seconds["+ skip patches that change nothing"])
claim(
    "ch03.positions_gain",
    seconds["+ skip patches that change nothing"] / seconds["+ reuse the positions before the patch"],
)
claim("ch03.max_difference", max((r - results["one patch per forward"]).abs().max() for r in results.values()))
go.Figure(go.Bar(x=list(seconds.values()), y=list(seconds), orientation="h")).update_layout(
    title="60 residual-stream patches on 32 prompts (CPU time)", xaxis_title="seconds", yaxis=dict(autorange="reversed")
)

# %% [markdown]
# The values are the same (the largest difference from the loop is {{claim:ch03.max_difference=0.0000}} to four decimals). Timings vary
# from machine to machine and run to run, so the prose checks this cell's own run against wide
# ranges: the full sweep is {{claim:ch03.speedup_full=4–30×}} faster than the loop. Batching alone gains little or
# nothing on a CPU ({{claim:ch03.speedup_batched=0.5–2×}}: a forward pass of 32 prompts already keeps the core busy); the
# speed-up comes from not recomputing what is already known. Skipping patches that change
# nothing takes it to {{claim:ch03.speedup_skip=3–15×}}, and running only the positions from S2 on divides what is
# left by {{claim:ch03.positions_gain=1.2–4×}}. (`python benchmarks/patching.py` times the same variants more carefully,
# as a median of several runs.) On a GPU, where a pass of a small model
# costs about the same for 32 rows as for 2,000, batching alone should matter much more (we
# have not measured that here).
#
# **What to see:** everything is at S2 (position 10) before layer 1, and at END (14) from
# layer 1 on: layer 0 moves the information "which name was repeated" from S2 to the final
# position in one step. Nothing at IO or S1 matters — they are the same in both runs, so
# patching them changes nothing. (That is the point of a minimal corruption: it asks about one
# piece of information.)
#
# ## 3. Which heads? Patching head outputs, then queries, keys, values, patterns
#
# ## Exercise 3.5 — a head-patching hook
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# `hook_z` (each head's output before `W_O`), `hook_q`, `hook_k` and `hook_v` all have shape
# (batch, pos, head, d_head); `hook_pattern` is (batch, head, q_pos, k_pos). Write one hook that
# patches one head, at every position, for all five.


# %%
def patch_head_hook(act: torch.Tensor, hook: Hook, head: int, clean_cache) -> torch.Tensor:
    """Replace head `head` of the activation by clean_cache[hook.name]'s, at every position.

    act: (batch, pos, head, d_head) for hook_z/q/k/v, (batch, head, q_pos, k_pos) for hook_pattern.
    """
    # BEGIN SOLUTION
    act = act.clone()
    if hook.name.endswith("hook_pattern"):
        act[:, head] = clean_cache[hook.name][:, head]
    else:
        act[:, :, head] = clean_cache[hook.name][:, :, head]
    return act
    # END SOLUTION


ch03.check_patch_head_hook(patch_head_hook)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The head axis is 2 for z/q/k/v and 1 for the pattern: branch on `hook.name.endswith("hook_pattern")`.
# </details>
#
# `P.head_sweep(model, corrupt, clean, metric, kind)` runs that hook for every head, batched. First
# the whole head (z), then its inputs one at a time:

# %%
heads = {
    kind: P.head_sweep(model, data.corrupt, data.clean, metric, kind=kind) for kind in ["z", "q", "k", "v", "pattern"]
}
plot.imshow(
    heads["z"],
    x=[f"H{h}" for h in range(model.cfg.n_heads)],
    y=[f"L{l}" for l in range(model.cfg.n_layers)],
    xlabel="head",
    ylabel="layer",
    title="Denoising each head's output (z, all positions)",
    zmax=1,
    text=True,
)

# %%
kinds = ["q", "k", "v", "pattern"]
side_by_side = torch.cat([heads[k] for k in kinds], dim=1)
plot.imshow(
    side_by_side,
    x=[f"{k} H{h}" for k in kinds for h in range(model.cfg.n_heads)],
    y=[f"L{l}" for l in range(model.cfg.n_layers)],
    xlabel="what is patched, head",
    ylabel="layer",
    title="Denoising one head's queries, keys, values or pattern",
    zmax=1,
    text=True,
)

# %%
roles = P.head_roles(model, data)
for name in ["z", "q", "k", "v", "pattern"]:
    print(
        f"{name:8s} 0.3: {heads[name][0, 3]:+.2f}   2.0: {heads[name][2, 0]:+.2f}   2.2: {heads[name][2, 2]:+.2f}   "
        f"3.2: {heads[name][3, 2]:+.2f}"
    )
print(
    f"head 0.3 attends END->S2 {roles['END->S2'][0, 3]:.2f}; "
    f"END->IO: 2.0 {roles['END->IO'][2, 0]:.2f}, 2.1 {roles['END->IO'][2, 1]:.2f}, 2.2 {roles['END->IO'][2, 2]:.2f}, 3.2 {roles['END->IO'][3, 2]:.2f}"
)
claim("ch03.head_0_3", heads["z"][0, 3])
claim("ch03.attn_0_3_s2", roles["END->S2"][0, 3])
claim("ch03.mover_2_0", heads["z"][2, 0])
claim("ch03.mover_2_2", heads["z"][2, 2])
claim("ch03.mover_3_2", heads["z"][3, 2])
claim("ch03.attn_2_2_io", roles["END->IO"][2, 2])
claim("ch03.attn_3_2_io", roles["END->IO"][3, 2])

# %% [markdown]
# **What to see:** one head, **0.3**, restores almost everything ({{claim:ch03.head_0_3=0.95}}) on its own — and all of
# it through its **values**: it attends from END to S2 ({{claim:ch03.attn_0_3_s2=0.88}} of its attention) in both runs,
# and what it *reads* there (which name) is what differs. Its query, key and pattern do not
# matter. It is the toy model's version of GPT-2's S-inhibition heads: it moves the subject's
# identity to the final position.
#
# The later heads are different. Each alone restores a little (2.0: {{claim:ch03.mover_2_0=0.09}}, 2.2: {{claim:ch03.mover_2_2=0.06}}, 3.2: {{claim:ch03.mover_3_2=0.11}}),
# and for them it is the **query** and the **pattern**, not the values: they attend from END
# to the names — 2.2 puts {{claim:ch03.attn_2_2_io=0.61}} of its attention on the IO, 3.2 only {{claim:ch03.attn_3_2_io=0.41}} — and copy
# what they find — name movers — and the corruption changes *where they look*, not what they read. Single-head patches are small because the movers are
# redundant: each one alone is not enough to flip the answer back.
#
# ## 4. Path patching
#
# Patching 0.3's output restores the answer, but through which path? Its output could reach the
# logits directly, or through later MLPs, or by changing the name movers' queries. **Path
# patching** (Wang et al.) isolates one path: patch the sender's output, **freeze every other
# head** to its corrupt-run value (so nothing else can pass the change on), record the
# receivers' queries (or keys, or values), then run the corrupt prompt again with only those
# inputs replaced.
#
# ## Exercise 3.6 — the freezing hook
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Write the hook for step one, on `blocks.{l}.attn.hook_z`: return the corrupt run's z for every
# head, except the sender (layer, head), which gets the clean run's.


# %%
def freeze_hook(z: torch.Tensor, hook: Hook, sender: tuple[int, int], clean_cache, corrupt_cache) -> torch.Tensor:
    """hook_z (batch, pos, head, d_head): the corrupt run's z, except the sender head's, from the clean run.

    sender: (layer, head). hook.layer() is the layer this hook sits in.
    """
    # BEGIN SOLUTION
    z = corrupt_cache[hook.name].clone()
    layer, head = sender
    if hook.layer() == layer:
        z[:, :, head] = clean_cache[hook.name][:, :, head]
    return z
    # END SOLUTION


ch03.check_freeze_hook(freeze_hook)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Start from `corrupt_cache[hook.name].clone()` (the incoming `z` may already differ from the
# corrupt run, because the sender's change flows into later heads), then copy in the sender's
# slice only in the sender's layer.
# </details>
#
# `P.path_patch` does both steps for every sender at once. The receivers: the name movers
# 2.0, 2.2 and 3.2. As in Wang et al., MLPs are not frozen: they recompute, so a path through an
# MLP counts.

# %%
movers = [(2, 0), (2, 2), (3, 2)]
paths = torch.cat(
    [P.path_patch(model, data.corrupt, data.clean, metric, movers, kind)[:3] for kind in ["q", "k", "v"]], dim=1
)
no_mlps = P.path_patch(model, data.corrupt, data.clean, metric, movers, "q", freeze_mlps=True)
print(f"0.3 -> movers' queries: {paths[0, 3]:.2f}; with the MLPs frozen too: {no_mlps[0, 3]:.2f}")
claim("ch03.path_0_3_q", paths[0, 3])
claim("ch03.path_kv_max", paths[:, 4:].abs().max())
claim("ch03.path_frozen_mlps", no_mlps[0, 3])
plot.imshow(
    paths,
    x=[f"{k} H{h}" for k in "qkv" for h in range(model.cfg.n_heads)],
    y=["L0", "L1", "L2"],
    xlabel="receivers' input, sender head",
    ylabel="sender layer",
    zmax=0.5,
    text=True,
    title="Path patching: sender head → the name movers' q, k, v",
)

# %% [markdown]
# **What to see:** the path 0.3 → name movers' **queries** restores about {{claim:ch03.path_0_3_q=0.25}}; nothing reaches
# their keys or values (no path to them restores more than {{claim:ch03.path_kv_max=0–0.05}}). So the algorithm is: 0.3 carries "the subject is John" to END; there it
# enters the name movers' queries, which then avoid John and attend to Mary, and copy her to the
# output. (Freeze the MLPs too, `freeze_mlps=True`, and the number drops to {{claim:ch03.path_frozen_mlps=0.03}}: the path runs
# through MLP 0 — a hint that MLP 0 is part of the circuit, which the automatic search below
# confirms.)
#
# ## 5. Attribution patching
#
# Every patch so far costs a forward pass. **Attribution patching** estimates all of them at once
# with a first-order Taylor expansion around the corrupt run:
#
# $$\text{metric}(\text{patched}) - \text{metric}(\text{corrupt}) \approx (a_\text{clean} - a_\text{corrupt}) \cdot \frac{\partial\, \text{metric}}{\partial a}\Big|_\text{corrupt}$$
#
# One clean forward, one corrupt forward and one backward give the estimate for every
# component. `model.run_with_cache_and_grads(tokens, metric, names_filter)` returns the metric,
# the activations and their gradients.
#
# ## Exercise 3.7 — attribution scores per head
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes


# %%
def attribution_scores(clean_z: torch.Tensor, corrupt_z: torch.Tensor, corrupt_grad: torch.Tensor) -> torch.Tensor:
    """Attribution-patching estimate of patching each head's z (all positions) from clean into corrupt.

    All three (batch, pos, head, d_head); corrupt_grad is d metric / d z on the corrupt run
    (the metric a mean over the prompts). Returns (head,): for each head, the linear estimate of
    how much the metric moves when that head's z, at every position of every prompt, is patched
    from the clean run into the corrupt one.
    """
    # BEGIN SOLUTION
    return ((clean_z - corrupt_z) * corrupt_grad).sum(dim=(0, 1, 3))
    # END SOLUTION


ch03.check_attribution_scores(attribution_scores)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# The formula above, for a head: the change a patch makes to z, dotted with the gradient, summed
# over everything the patch covers (every prompt, every position, every component of d_head).
# </details>
#
# <details><summary>Hint 2: the formula</summary>
#
# `((clean_z - corrupt_z) * corrupt_grad).sum(dim=(0, 1, 3))`. The metric is a mean over
# prompts, so the gradient already carries the 1/batch: sum, do not average.
# </details>

# %%
z_names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
_, clean_cache = model.run_with_cache(data.clean, names_filter=z_names)
_, corrupt_cache, grads = model.run_with_cache_and_grads(data.corrupt, metric, names_filter=z_names)
estimate = torch.stack([attribution_scores(clean_cache[n], corrupt_cache[n], grads[n]) for n in z_names])
head_labels = [f"{l}.{h}" for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
corr = torch.corrcoef(torch.stack([estimate.flatten(), heads["z"].flatten()]))[0, 1]
plot.scatter(
    heads["z"].flatten(),
    estimate.flatten(),
    labels=head_labels,
    diagonal=True,
    xlabel="real patching (z, all positions)",
    ylabel="attribution estimate",
    title=f"Attribution patching vs real head patching (r = {corr:.3f})",
)

# %%
resid_names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
resid_attr = P.attribution_patch(model, data.corrupt, data.clean, metric, resid_names)
resid_estimate = torch.stack([resid_attr[n] for n in resid_names])
print(f"heads: correlation {corr:.3f}; head 0.3 real {heads['z'][0, 3]:.2f}, estimated {estimate[0, 3]:.2f}")
print(
    f"residual stream: S2 at layer 0 real {resid[0, 10]:.2f}, estimated {resid_estimate[0, 10]:.2f}; "
    f"END at layer 3 real {resid[3, 14]:.2f}, estimated {resid_estimate[3, 14]:.2f}"
)
claim("ch03.attr_corr", corr)
claim("ch03.attr_0_3_real", heads["z"][0, 3])
claim("ch03.attr_0_3_estimate", estimate[0, 3])
claim("ch03.attr_s2_real", resid[0, 10])
claim("ch03.attr_s2_estimate", resid_estimate[0, 10])
claim("ch03.attr_end_real", resid[3, 14])
claim("ch03.attr_end_estimate", resid_estimate[3, 14])

# %% [markdown]
# **What to see:** across the 16 heads the estimate correlates almost perfectly with real
# patching (r ≈ {{claim:ch03.attr_corr=0.997}}) — it ranks the heads right for the price of one backward pass. But the
# big effects are underestimated by half: head 0.3 is {{claim:ch03.attr_0_3_real=0.95}} for real and {{claim:ch03.attr_0_3_estimate=0.46}} estimated, the S2
# residual at layer 0 {{claim:ch03.attr_s2_real=1.00}} vs {{claim:ch03.attr_s2_estimate=0.38}}, END at layer 3 {{claim:ch03.attr_end_real=0.96}} vs {{claim:ch03.attr_end_estimate=0.50}}. The approximation is linear;
# the model is not. When a patch changes an activation a lot — a different name, a
# different attention target, a LayerNorm scale, a saturated softmax — the gradient at the
# corrupt point says little about the far end. Use attribution to *rank* and prune, then verify
# the survivors with real patching.
#
# ## 6. Finding the circuit automatically
#
# ACDC (Conmy et al.) automates what we just did by hand: start from the whole model, and
# visit the components from the output backwards; *ablate* each one — replace its output by its
# value on a corrupted input — and if the metric drops by less than a threshold τ, leave it
# ablated for good. What survives is the circuit. We run it over **nodes** (16 heads and 4
# MLPs) rather than ACDC's edges, which keeps it to 21 forward passes. And we prune on the
# metric we have used all along, the normalised logit difference, where ACDC measures the KL
# divergence of the ablated model's output from the full model's: KL asks that the circuit
# reproduce the whole output distribution, ours only that it prefer IO to S as the model does —
# an easier bar, so our circuits can be smaller than ACDC's would be.
#
# But "ablate" needs a replacement value, and there are several:
# - **zero**: set the output to 0 — simple, but 0 may be a value the model never sees;
# - **mean**: the average over a reference batch (here the clean prompts), per position —
#   removes the prompt-specific information, keeps the constant part;
# - **resample**: the value on the corrupt prompt paired with each clean prompt — removes exactly
#   the information the corruption changes.
#
# ## Exercise 3.8 — ablation values
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes


# %%
def ablation_value(clean_acts: torch.Tensor, corrupt_acts: torch.Tensor, kind: str) -> torch.Tensor:
    """What replaces an ablated activation. clean_acts, corrupt_acts: (batch, pos, ...).

    "zero": zeros of shape (1, pos, ...); "mean": the mean over the clean batch at each
    position, (1, pos, ...); "resample": the corrupt activations, (batch, pos, ...).
    """
    # BEGIN SOLUTION
    if kind == "zero":
        return torch.zeros_like(clean_acts[:1])
    if kind == "mean":
        return clean_acts.mean(0, keepdim=True)
    if kind == "resample":
        return corrupt_acts.clone()
    raise ValueError(f"unknown kind {kind!r}")
    # END SOLUTION


ch03.check_ablation_value(ablation_value)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `clean_acts.mean(0, keepdim=True)` averages over prompts and keeps positions separate.
# </details>
#
# First, one node at a time. This is **noising**: run the clean prompts and ablate one node;
# `P.patch_sweep` batches it exactly like the sweeps above.

# %%
nodes = P.all_nodes(model)
node_labels = [str(n) for n in nodes]
hook_names = sorted({n.hook for n in nodes})
_, clean_nodes = model.run_with_cache(data.clean, names_filter=hook_names)
_, corrupt_nodes = model.run_with_cache(data.corrupt, names_filter=hook_names)
values = {
    kind: {name: ablation_value(clean_nodes[name], corrupt_nodes[name], kind) for name in hook_names}
    for kind in ["zero", "mean", "resample"]
}
patches = [P.Patch(n.hook, () if n.head is None else (slice(None), n.head)) for n in nodes]
single = torch.stack([P.patch_sweep(model, data.clean, values[kind], patches, metric) for kind in values])
at = {label: i for i, label in enumerate(node_labels)}
kind_row = {kind: i for i, kind in enumerate(values)}
claim("ch03.resample_0_3", single[kind_row["resample"], at["0.3"]])
claim("ch03.resample_MLP0", single[kind_row["resample"], at["MLP0"]])
claim("ch03.resample_MLP3", single[kind_row["resample"], at["MLP3"]])
claim("ch03.resample_MLP2", single[kind_row["resample"], at["MLP2"]])
claim("ch03.resample_3_2", single[kind_row["resample"], at["3.2"]])
claim("ch03.mean_zero_0_3", single[kind_row["mean"], at["0.3"]])
claim("ch03.mean_zero_0_3", single[kind_row["zero"], at["0.3"]])
claim("ch03.no_preference", normalise(torch.tensor(0.0), clean_ld, corrupt_ld))
claim("ch03.mean_2_1", single[kind_row["mean"], at["2.1"]])
claim("ch03.mean_2_3", single[kind_row["mean"], at["2.3"]])
claim("ch03.zero_0_1", single[kind_row["zero"], at["0.1"]])
claim("ch03.zero_1_0", single[kind_row["zero"], at["1.0"]])
plot.imshow(
    single,
    x=node_labels,
    y=list(values),
    xlabel="ablated node",
    ylabel="ablation",
    title="The metric with one node ablated (1 = unharmed)",
    zmax=1.5,
    text=True,
)

# %% [markdown]
# **What to see:** the three ablations disagree.
# - Resample ablation singles out 0.3 ({{claim:ch03.resample_0_3=0.06}}) and MLP 0 ({{claim:ch03.resample_MLP0=0.10}}), then MLP 3 ({{claim:ch03.resample_MLP3=0.54}}), MLP 2
#   ({{claim:ch03.resample_MLP2=0.59}}), 3.2 ({{claim:ch03.resample_3_2=0.83}}) and, a little, MLP 1, 2.0 and 2.2.
# - Mean and zero ablation leave 0.3 at {{claim:ch03.mean_zero_0_3=0.5–0.6}} — about where a model with *no* preference
#   between the two names lands on this scale (a logit difference of 0 normalises to {{claim:ch03.no_preference=0.49}}): they
#   destroy the information instead of swapping it.
# - They also see heads resample ablation cannot: mean-ablating **2.1** hurts ({{claim:ch03.mean_2_1=0.64}}) and
#   mean-ablating **2.3** *helps* ({{claim:ch03.mean_2_3=1.22}}). 2.1 attends from END to the IO and 2.3 to S1 — but those are at
#   positions 2 and 4 in the clean *and* the corrupt prompts, so resampling from the corrupt run
#   changes nothing about them. Resample ablation measures what carries the clean/corrupt
#   *difference*; mean ablation what the behaviour needs compared with an average prompt.
# - Zero ablation adds effects of its own, from off-distribution values: zeroing 0.1 or 1.0
#   raises the metric ({{claim:ch03.zero_0_1=1.09}}, {{claim:ch03.zero_1_0=1.10}}), though the mean ablation of both does nothing.
#
# ## Exercise 3.9 — the pruning loop
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪ · about 30 minutes
#
# Now write the whole search yourself, in two parts.
#
# **(a) Score a circuit.** Run the clean prompts with every node that is *not* kept ablated —
# a head by replacing its slice of `hook_z`, an MLP by replacing its whole `hook_mlp_out` with
# the ablation value from exercise 3.8 — and return the metric. This is the one experiment the
# search repeats; `P.circuit_score` is the same function.


# %%
def circuit_score(
    model: HookedModel,
    clean: torch.Tensor,
    values: dict[str, torch.Tensor],
    keep: list[Node],
    metric,
    nodes: list[Node] | None = None,
) -> float:
    """The metric of the clean run with every node of `nodes` that is not in `keep` ablated.

    clean: (batch, pos) tokens. values: hook name -> the replacement for that hook's activation,
    (batch, pos, ...) or (1, pos, ...) to broadcast (`ablation_value`'s output), for every
    `Node.hook` of `nodes`. A head node (layer, head) stands for its own head's slice of
    `blocks.{layer}.attn.hook_z` only; an MLP node (layer, None) for all of
    `blocks.{layer}.hook_mlp_out`. nodes: default `all_nodes(model)`. Kept nodes and nodes not in
    `nodes` compute as usual. Returns the metric as a float; the model is left unchanged.
    """
    # BEGIN SOLUTION
    nodes = all_nodes(model) if nodes is None else list(nodes)
    keep = set(keep)
    drop: dict[str, list[int | None]] = {}
    for node in nodes:
        if node not in keep:
            drop.setdefault(node.hook, []).append(node.head)

    def ablate(act: torch.Tensor, hook: Hook) -> torch.Tensor:
        act = act.clone()
        value = values[hook.name].to(act.dtype)
        for head in drop[hook.name]:
            if head is None:
                act[:] = value
            else:
                act[:, :, head] = value[:, :, head]
        return act

    with torch.no_grad():
        logits = model.run_with_hooks(clean, fwd_hooks=[(name, ablate) for name in drop])
    return float(metric(logits))
    # END SOLUTION


ch03.check_circuit_score(circuit_score)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Group the dropped nodes by hook name: several heads of one layer share `hook_z`, so one hook
# per name must ablate all of that layer's dropped heads.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# In the hook, `act = act.clone()`; for a head, `act[:, :, head] = value[:, :, head]` (a
# (1, pos, ...) value broadcasts over the batch); for an MLP, `act[:] = value`. Run with
# `model.run_with_hooks(clean, fwd_hooks=[(name, ablate) for name in drop])` under `torch.no_grad()`.
# </details>
#
# **(b) The loop.** `score(kept)` is part (a) with everything but `kept` ablated. Start from the
# whole model, visit the nodes from the last to the first, and remove a node for good when the
# score falls by less than `threshold` compared with the *current* circuit.


# %%
def prune(nodes: list[Node], score, threshold: float) -> list[Node]:
    """ACDC-style greedy node pruning. nodes: in forward order. score(list of kept nodes) -> float.

    Visits every node once, latest first; a node leaves the circuit for good when the circuit
    without it scores at least the current circuit's score minus `threshold`. Calls `score` once
    for the full circuit, then once per node. Returns the kept nodes, in forward order.
    """
    # BEGIN SOLUTION
    kept = list(nodes)
    current = score(kept)
    for node in reversed(nodes):
        trial = [n for n in kept if n != node]
        value = score(trial)
        if value >= current - threshold:
            kept, current = trial, value
    return kept
    # END SOLUTION


ch03.check_prune(prune)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Keep `current = score(kept)` up to date after every accepted removal. Walk `reversed(nodes)`
# so that a node is judged after everything downstream of it has been settled.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# For each node, `trial = [n for n in kept if n != node]`; accept it when
# `score(trial) >= current - threshold`, and then set `current` to that score.
# </details>
#
# Run it with resample ablation and τ = 0.02, and measure the **faithfulness** of the result: the
# metric with everything outside the circuit ablated (1 = the circuit alone does all the model
# does, 0 = nothing). The cell also runs the package's own search (`P.prune_circuit` scored by
# `P.circuit_score`) and stops if your circuit differs from it.

# %%
threshold = 0.02
circuits, faithfulness, empty = {}, {}, {}
for kind in values:
    score = lambda keep, kind=kind: circuit_score(model, data.clean, values[kind], keep, metric)
    circuits[kind] = prune(nodes, score, threshold)
    package_score = lambda keep, kind=kind: P.circuit_score(model, data.clean, values[kind], keep, metric)
    package, _ = P.prune_circuit(nodes, package_score, threshold)  # the package's own circuit discovery
    assert circuits[kind] == package, f"your circuit differs from the package's: {package}"
    faithfulness[kind], empty[kind] = score(circuits[kind]), score([])
    print(
        f"{kind:9s} circuit ({len(circuits[kind])} nodes): {' '.join(map(str, circuits[kind]))}  "
        f"faithfulness {faithfulness[kind]:.2f}  (nothing kept: {empty[kind]:.2f})"
    )
claim("ch03.resample_circuit_size", len(circuits["resample"]))
claim("ch03.resample_faithfulness", faithfulness["resample"])
claim("ch03.mean_circuit_size", len(circuits["mean"]))
claim("ch03.mean_faithfulness", faithfulness["mean"])
claim("ch03.mean_empty", empty["mean"])
claim("ch03.zero_circuit_size", len(circuits["zero"]))
claim("ch03.zero_faithfulness", faithfulness["zero"])
claim("ch03.zero_empty", empty["zero"])

# %% [markdown]
# ### Compare with a hypothesis
#
# The generator's rule is "the answer is the name of the first clause that is *not* repeated".
# That is all we know for certain. A plausible implementation needs (a) a way to get "which name
# is repeated" to the last position and (b) heads at the last position that attend to the other
# name and copy it. To turn that into a list of nodes we have to look at the model itself:
# label the heads by where *they* attend on clean prompts, and take the heads that look from END
# at S2 (a), the heads that look from END at the IO (b), and the MLPs. This hypothesis is
# inferred from the model's own attention, not given by the generator — so agreement with the
# search is evidence, not proof.

# %%
by_role = {"END->S2 (carries the subject)": roles["END->S2"] > 0.5, "END->IO (name movers)": roles["END->IO"] > 0.3}
hypothesis = [n for n in nodes if n.head is None or any(mask[n.layer, n.head] for mask in by_role.values())]
for role, mask in by_role.items():
    print(f"{role}: {', '.join(f'{l}.{h}' for l, h in mask.nonzero().tolist())}")
score = lambda keep: P.circuit_score(model, data.clean, values["resample"], keep, metric)
found = circuits["resample"]
print(f"hypothesis:    {' '.join(map(str, hypothesis))}  faithfulness {score(hypothesis):.2f}")
print(f"found circuit: {' '.join(map(str, found))}  faithfulness {score(found):.2f}")
print("found heads missing from the hypothesis:", [str(n) for n in found if n not in hypothesis] or "none")
print("hypothesis heads the search dropped:", [str(n) for n in hypothesis if n not in found])
claim("ch03.attn_2_1_io", roles["END->IO"][2, 1])
claim("ch03.hypothesis_faithfulness", score(hypothesis))

# %% [markdown]
# **What to see:** with resample ablation the search keeps 0.3, the name movers 2.0, 2.2 and
# 3.2 and every MLP — {{claim:ch03.resample_circuit_size=8}} of 20 nodes — and that circuit is faithful ({{claim:ch03.resample_faithfulness=1.02}}: it does everything
# the model does; the rest together contribute nothing). It is the hypothesis
# minus **2.1**, which attends to the IO with {{claim:ch03.attn_2_1_io=0.98}} of its attention — but the IO sits at
# position 2 in every prompt, clean or swapped, so 2.1 can look there without knowing which
# name was repeated; it does not carry the clean/corrupt difference, and resample ablation
# rightly drops it. Adding it back changes nothing (the hypothesis scores {{claim:ch03.hypothesis_faithfulness=1.02}} too).
#
# The three ablations give three circuits. Mean ablation keeps {{claim:ch03.mean_circuit_size=6}} nodes, 2.1 among them and
# 2.0, 2.2, 3.2 not, and zero ablation {{claim:ch03.zero_circuit_size=14}}: zeroing moves the residual stream off-distribution,
# so nearly everything looks necessary. They score {{claim:ch03.mean_faithfulness=1.19}} and {{claim:ch03.zero_faithfulness=1.19}}, *above* the clean model, because
# ablating 2.3 (which attends to S1) raises the logit difference — "faithfulness" above 1 is as
# much a warning as below. And their empty circuits score {{claim:ch03.mean_empty=0.56}} and {{claim:ch03.zero_empty=0.51}} (no preference), not 0.
# A circuit is a claim *relative to an ablation and a corruption*: say which.

# %% [markdown]
# ## 7. The hard parts yourself, and the research standard for a circuit claim
#
# So far the package has done the heavy lifting: the batched sweeps, path patching, the circuit
# score. The exercises below (optional, and the hardest of the chapter) have you write those
# yourself, each checked against the package's own. Then three questions every circuit claim
# should answer, as Wang et al. (2022) do for GPT-2's IOI circuit: is the circuit *faithful*,
# *complete* and *minimal*? Does it matter whether we patch by noising or denoising? And when we
# knock out a component, does the rest of the model repair the damage?
#
# ## Exercise 3.10 — a batched head sweep
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵⚪⚪ · about 25 minutes
#
# Patch every head's output (its `hook_z`, all positions) from the source run into the base
# run — but in **one** forward pass for all heads, not one per head. This is the core of
# `P.head_sweep`, without its savings; it must give the same numbers.


# %%
def batched_head_sweep(model: HookedModel, base: torch.Tensor, source_tokens: torch.Tensor, metric) -> torch.Tensor:
    """Patch each head's hook_z (all positions) from the source run into the base run, all heads at once.

    base, source_tokens: (batch, pos) tokens. metric: logits (batch, pos, d_vocab) of the base
    prompts, in order -> scalar tensor. Returns (n_layers, n_heads) float32 on the CPU: entry
    (l, h) is the metric of the base run with head h of layer l taken from the source run, the
    same values as `P.head_sweep(model, base, source_tokens, metric)`. Uses one forward pass to
    cache the source run and one forward pass for all the patches together.
    """
    # BEGIN SOLUTION
    n_layers, n_heads, n = model.cfg.n_layers, model.cfg.n_heads, base.shape[0]
    names = [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    _, source = model.run_with_cache(source_tokens, names_filter=names)

    def patch(z: torch.Tensor, hook: Hook) -> torch.Tensor:
        z = z.clone()
        for h in range(n_heads):
            i = hook.layer() * n_heads + h  # copy i of the base batch gets head (layer, h)
            z[i * n : (i + 1) * n, :, h] = source[hook.name][:, :, h]
        return z

    with torch.no_grad():
        logits = model.run_with_hooks(base.repeat(n_layers * n_heads, 1), fwd_hooks=[(name, patch) for name in names])
    values = [metric(logits[i * n : (i + 1) * n]) for i in range(n_layers * n_heads)]
    return torch.stack(values).float().cpu().reshape(n_layers, n_heads)
    # END SOLUTION


ch03.check_batched_head_sweep(batched_head_sweep)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Stack `n_layers * n_heads` copies of the base batch (`base.repeat(k, 1)`): copy *i* is the
# experiment "patch head *i*". One hook per layer writes each of that layer's heads into its own
# copy's rows, and the metric is applied to each copy's rows separately.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# With `n` prompts, copy `i = layer * n_heads + head` owns rows `i*n : (i+1)*n`. In the hook on
# `blocks.{l}.attn.hook_z`: `z[i*n:(i+1)*n, :, h] = source[hook.name][:, :, h]` for every head h
# of that layer. Afterwards `metric(logits[i*n:(i+1)*n])` for each i.
# </details>
#
# Compare with the package and with one forward pass per head:

# %%
z_names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
_, clean_z = model.run_with_cache(data.clean, names_filter=z_names)
z_patches = [
    P.Patch(f"blocks.{l}.attn.hook_z", (slice(None), h))
    for l in range(model.cfg.n_layers)
    for h in range(model.cfg.n_heads)
]
sweeps, sweep_seconds = {}, {}
with one_thread():
    for label, run in {
        "one forward per head": lambda: P.patch_loop(model, data.corrupt, clean_z, z_patches, metric).reshape(
            model.cfg.n_layers, model.cfg.n_heads
        ),
        "yours, one batched pass": lambda: batched_head_sweep(model, data.corrupt, data.clean, metric),
        "P.head_sweep": lambda: P.head_sweep(model, data.corrupt, data.clean, metric),
    }.items():
        start = time.process_time()
        sweeps[label] = run()
        sweep_seconds[label] = time.process_time() - start
for label, value in sweeps.items():
    print(
        f"{label:24s} {sweep_seconds[label]:5.2f} s CPU   max |difference| from P.head_sweep "
        f"{(value - sweeps['P.head_sweep']).abs().max():.1e}"
    )
claim("ch03.batched_sweep_difference", (sweeps["yours, one batched pass"] - sweeps["P.head_sweep"]).abs().max())
claim("ch03.batched_vs_loop", sweep_seconds["yours, one batched pass"] / sweep_seconds["one forward per head"])
claim("ch03.head_sweep_speedup", sweep_seconds["one forward per head"] / sweep_seconds["P.head_sweep"])

# %% [markdown]
# **What to see:** the three agree (to {{claim:ch03.batched_sweep_difference=0.0000}} at four decimals). On a CPU your one big pass
# is no faster than the loop ({{claim:ch03.batched_vs_loop=0.5–4×}} its CPU time: the same work, grouped into one 512-row batch,
# plus the source run), while `P.head_sweep` is {{claim:ch03.head_sweep_speedup=1.2–10×}} faster than the loop because it also skips
# what cannot change (every position before S2). On a GPU, where 512 rows cost about as much as
# 32, the batched pass is where the speed would come from (not measured here).
#
# ## Exercise 3.11 — path patching from scratch
#
# > Difficulty 🔴🔴🔴🔴🔴 · Importance 🔵🔵🔵🔵⚪ · about 45 minutes
#
# Section 4 gave you the freezing hook; `P.path_patch` did the rest. Now write all of it for one
# sender head and a set of receiver heads, the way Wang et al. define it: the sender's output
# comes from the source run, every other head below the receivers is held at its base-run
# output (MLPs recompute), and the effect reaches the output *only* through the receivers'
# queries, keys or values.


# %%
def path_patch_one(
    model: HookedModel,
    base: torch.Tensor,
    source_tokens: torch.Tensor,
    metric,
    sender: tuple[int, int],
    receivers: list[tuple[int, int]],
    receiver_input: str = "q",
) -> float:
    """The metric when only the path sender -> receivers' `receiver_input` carries the source run.

    base, source_tokens: (batch, pos) tokens (denoising: base = corrupt, source = clean).
    metric: logits (batch, pos, d_vocab) -> scalar tensor. sender: (layer, head), in a layer
    below the highest receiver's. receivers: (layer, head) pairs. receiver_input: "q", "k" or "v".
    The same value as `P.path_patch(model, base, source_tokens, metric, receivers,
    receiver_input)[sender]`: in the final run, every activation is the base run's except the
    receivers' `receiver_input` (all positions), which take the values they have when the
    sender's hook_z comes from the source run and every other head's hook_z below the highest
    receiver's layer is held at its base-run value (MLPs recompute). Returns a float.
    """
    # BEGIN SOLUTION
    top = max(layer for layer, _ in receivers)
    z_names = [f"blocks.{l}.attn.hook_z" for l in range(top)]
    recv_names = sorted({f"blocks.{l}.attn.hook_{receiver_input}" for l, _ in receivers})
    _, source = model.run_with_cache(source_tokens, names_filter=z_names)
    _, frozen = model.run_with_cache(base, names_filter=z_names)
    freeze = [(name, lambda z, hook: freeze_hook(z, hook, sender, source, frozen)) for name in z_names]
    with model.hooks(freeze):  # step 1: sender from the source, other heads frozen; record the receivers' inputs
        _, recorded = model.run_with_cache(base, names_filter=recv_names)

    def replace(act: torch.Tensor, hook: Hook) -> torch.Tensor:
        act = act.clone()
        for layer, head in receivers:
            if layer == hook.layer():
                act[:, :, head] = recorded[hook.name][:, :, head]
        return act

    with torch.no_grad():  # step 2: only the receivers' inputs change
        return float(metric(model.run_with_hooks(base, fwd_hooks=[(name, replace) for name in recv_names])))
    # END SOLUTION


ch03.check_path_patch_one(path_patch_one)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Two runs of the base prompts. In the first, hook every `hook_z` below the highest receiver's
# layer: the sender's slice comes from the source cache, every other head's from the base
# cache (your `freeze_hook` from exercise 3.6 does exactly that), and cache the receivers'
# `hook_q` (or k, v). In the second, hook only the receivers' inputs and put the recorded values
# in, for the receiver heads only.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `with model.hooks([(name, freeze) for name in z_names]): _, recorded = model.run_with_cache(base, names_filter=recv_names)`
# hooks and caches in one run. In the second run's hook, `act[:, :, head] = recorded[hook.name][:, :, head]`
# for each receiver whose layer is `hook.layer()`. Do not freeze the MLPs: a path through an
# MLP into the receivers counts.
# </details>
#
# Your function against the package, for every sender and the name movers' queries:

# %%
yours = torch.full((model.cfg.n_layers, model.cfg.n_heads), float("nan"))
for layer in range(3):
    for head in range(model.cfg.n_heads):
        yours[layer, head] = path_patch_one(model, data.corrupt, data.clean, metric, (layer, head), movers, "q")
package = P.path_patch(model, data.corrupt, data.clean, metric, movers, "q")
print(f"0.3 -> movers' queries: yours {yours[0, 3]:.3f}, P.path_patch {package[0, 3]:.3f}")
claim("ch03.path_from_scratch_difference", (yours[:3] - package[:3]).abs().max())

# %% [markdown]
# They agree to {{claim:ch03.path_from_scratch_difference=0.0000}} at four decimals, for all twelve senders.
#
# ### Noising or denoising?
#
# Every patch so far was **denoising**: run the corrupt prompts, put one clean piece back, ask
# how much of the clean behaviour returns. That asks whether the piece is **sufficient** (given
# the rest of the corrupt run). **Noising** runs the clean prompts and puts one corrupt piece in:
# how much of the clean behaviour is lost? That asks whether the piece is **necessary**. The
# two answer different questions, and disagree exactly when the circuit has structure
# (Heimersheim & Nanda, 2024): if two components each suffice (an OR, e.g. backups), noising
# either one shows little, and denoising each shows a lot; if both are needed together (an AND),
# it is the other way round. Path patching runs in both directions with the same code — swap
# base and source:

# %%
denoise = P.path_patch(model, data.corrupt, data.clean, metric, movers, "q")
noise = P.path_patch(model, data.clean, data.corrupt, metric, movers, "q")
print(f"path 0.3 -> movers' q: denoising restores {denoise[0, 3]:.2f}; noising loses {1 - noise[0, 3]:.2f}")
heads_noise = P.head_sweep(model, data.clean, data.corrupt, metric)
keep_all_but_movers = [n for n in nodes if (n.layer, n.head) not in movers]
values_clean = {name: clean_nodes[name] for name in hook_names}
movers_together = {
    "denoising (corrupt run, movers from clean)": circuit_score(
        model, data.corrupt, values_clean, keep_all_but_movers, metric
    ),
    "noising (clean run, movers from corrupt)": 1
    - circuit_score(model, data.clean, values["resample"], keep_all_but_movers, metric),
}
for label, value in movers_together.items():
    print(f"all three movers at once, {label}: {value:.2f}")
print(
    "one mover at a time: denoising",
    [f"{heads['z'][l, h]:.2f}" for l, h in movers],
    " noising loses",
    [f"{1 - heads_noise[l, h]:.2f}" for l, h in movers],
)
claim("ch03.path_denoise_0_3", denoise[0, 3])
claim("ch03.path_noise_0_3", 1 - noise[0, 3])
claim("ch03.head_denoise_0_3", heads["z"][0, 3])
claim("ch03.head_noise_0_3", 1 - heads_noise[0, 3])
claim("ch03.movers_denoise_sum", sum(heads["z"][l, h] for l, h in movers))
claim("ch03.movers_noise_sum", sum(1 - heads_noise[l, h] for l, h in movers))
claim("ch03.movers_denoise_together", movers_together["denoising (corrupt run, movers from clean)"])
claim("ch03.movers_noise_together", movers_together["noising (clean run, movers from corrupt)"])
plot.imshow(
    torch.stack([heads["z"].flatten(), 1 - heads_noise.flatten()]),
    x=head_labels,
    y=["denoising: restored", "noising: lost"],
    xlabel="head",
    title="Each head's output patched, both ways",
    zmax=1,
    text=True,
)

# %% [markdown]
# **What to see:** here the two directions mostly agree. The path 0.3 → movers' queries
# restores {{claim:ch03.path_denoise_0_3=0.25}} when denoised and loses {{claim:ch03.path_noise_0_3=0.29}} when noised; head 0.3 alone restores {{claim:ch03.head_denoise_0_3=0.95}} and its
# loss costs {{claim:ch03.head_noise_0_3=0.94}}: it is both sufficient and necessary, the single route of the
# information. The name movers are the interesting case: one at a time they restore
# {{claim:ch03.movers_denoise_sum=0.25}} in sum and lose {{claim:ch03.movers_noise_sum=0.31}} in sum, and patched all at once they restore
# {{claim:ch03.movers_denoise_together=0.28}} and lose {{claim:ch03.movers_noise_together=0.32}}: close to the sum of their parts, both ways. Their effects simply add
# up on the logits — neither an OR (backups, which noising would hide) nor an AND (which
# denoising would hide) — and no single mover is enough to flip the answer.
#
# Use denoising to find what *suffices* to carry the information (and a circuit that is sufficient); noising to
# test whether a claimed circuit is *needed*. A careful claim reports both.
#
# ## Exercise 3.12 — faithfulness, completeness, minimality
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 30 minutes
#
# Wang et al. (2022) hold their circuit *C* (a set of nodes of the model *M*) to three criteria,
# with *F(X)* the metric when only the nodes of *X* run and the rest is ablated:
# - **faithfulness**: *C* alone does what *M* does — *F(C)* close to *F(M)*;
# - **completeness**: *C* contains everything that matters. Knock a set *K* out of both; if *C*
#   missed a component, the two respond differently. The *incompleteness* of *K* is the gap
#   between their responses, and should be small for every *K* ⊆ *C*;
# - **minimality**: *C* contains nothing that does not matter. Every node *v* of *C* should
#   change the metric when removed, at least for some *K* ⊆ *C* \ {*v*} already knocked out —
#   the *K* is there for backups: a node whose partner covers for it matters only once the
#   partner is gone.
#
# We cannot try every *K* (2⁸ here, 2^hundreds in GPT-2), so the function takes a list of them.


# %%
def circuit_criteria(
    score, circuit: list[Node], nodes: list[Node], subsets: list[list[Node]]
) -> dict[str, torch.Tensor]:
    """Faithfulness, incompleteness and minimality of `circuit` (Wang et al. 2022).

    score(kept nodes) -> float: the metric with every node not kept ablated (e.g. `circuit_score`).
    circuit: the circuit's nodes C; nodes: every node of the model M (C ⊆ M); subsets: the sets K
    to knock out, each a list of nodes of C. Returns a dict of float32 tensors:
    "faithfulness" (0-dim): the circuit's score as a fraction of the full model's;
    "incompleteness" (len(subsets),): for each K, the absolute difference between the circuit's
    and the full model's scores once K is knocked out of both;
    "minimality" (len(circuit),): for each node v of C, the largest absolute change in the score of
    C minus K when v is knocked out too, over K = the empty set and every K of `subsets` without v.
    """

    # BEGIN SOLUTION
    def without(kept: list[Node], removed: list[Node]) -> list[Node]:
        return [n for n in kept if n not in set(removed)]

    faithfulness = score(list(circuit)) / score(list(nodes))
    incompleteness = [abs(score(without(circuit, K)) - score(without(nodes, K))) for K in subsets]
    minimality = []
    for v in circuit:
        options = [[]] + [K for K in subsets if v not in K]
        minimality.append(max(abs(score(without(circuit, [*K, v])) - score(without(circuit, K))) for K in options))
    return {
        "faithfulness": torch.tensor(faithfulness),
        "incompleteness": torch.tensor(incompleteness),
        "minimality": torch.tensor(minimality),
    }
    # END SOLUTION


ch03.check_circuit_criteria(circuit_criteria)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Everything is `score` of a set of kept nodes: write a helper `without(kept, removed)` and
# express each criterion through it. Faithfulness is one ratio; incompleteness one difference
# per K; minimality a maximum over the K that leave v in.
# </details>
#
# <details><summary>Hint 2: the formulas</summary>
#
# faithfulness = F(C) / F(M); incompleteness(K) = |F(C \ K) − F(M \ K)|;
# minimality(v) = max over K ∈ {∅} ∪ {K ∈ subsets : v ∉ K} of |F(C \ (K ∪ {v})) − F(C \ K)|.
# </details>
#
# We measure the resample circuit from exercise 3.9 with the subsets Wang et al. suggest: each
# node alone, each class of node (the name movers, the MLPs, 0.3 with MLP 0), and a few random
# ones. A score is a forward pass, so we remember the ones already computed.

# %%
found = circuits["resample"]
memo: dict[frozenset, float] = {}


def resample_score(keep: list[Node]) -> float:
    key = frozenset(keep)
    if key not in memo:
        memo[key] = circuit_score(model, data.clean, values["resample"], keep, metric)
    return memo[key]


classes = {
    "name movers": [n for n in found if (n.layer, n.head) in movers],
    "MLPs": [n for n in found if n.head is None],
    "0.3 + MLP0": [n for n in found if n in (Node(0, 3), Node(0))],
}
g = torch.Generator().manual_seed(0)
random_subsets = [[n for n, keep in zip(found, torch.rand(len(found), generator=g) < 0.5) if keep] for _ in range(6)]
subsets = [[n] for n in found] + list(classes.values()) + random_subsets
subset_labels = [str(n) for n in found] + list(classes) + [" ".join(map(str, K)) or "∅" for K in random_subsets]
criteria = circuit_criteria(resample_score, found, nodes, subsets)
worst = int(criteria["incompleteness"].argmax())
alone = torch.tensor([abs(resample_score(found) - resample_score([n for n in found if n != v])) for v in found])
print(
    f"faithfulness {criteria['faithfulness']:.3f}; worst incompleteness {criteria['incompleteness'][worst]:.3f} (K = {subset_labels[worst]})"
)
for v, m, a in zip(found, criteria["minimality"], alone):
    print(f"minimality of {str(v):5s} {m:.2f}   (K = ∅ alone: {a:.2f})")
claim("ch03.faithfulness_ratio", criteria["faithfulness"])
claim("ch03.incompleteness_max", criteria["incompleteness"].max())
claim("ch03.minimality_min", criteria["minimality"].min())
claim("ch03.minimality_2_2_alone", alone[found.index(Node(2, 2))])
claim("ch03.minimality_2_2", criteria["minimality"][found.index(Node(2, 2))])
go.Figure(
    [
        go.Bar(name="knocked out alone (K = ∅)", x=[str(n) for n in found], y=alone),
        go.Bar(name="best K (minimality)", x=[str(n) for n in found], y=criteria["minimality"]),
    ]
).update_layout(
    barmode="group", title="Minimality: how much each circuit node matters", yaxis_title="|change in metric|"
)

# %% [markdown]
# **What to see:** the circuit is faithful (it keeps {{claim:ch03.faithfulness_ratio=1.02}} of the model's metric) and nearly
# complete: no subset we tried makes the circuit and the model disagree by more than {{claim:ch03.incompleteness_max=0.07}} (the
# worst is K = {0.3}: without 0.3, the heads outside the circuit still recover a little). Minimality
# shows why the K are there: knocked out alone, name mover 2.2 costs {{claim:ch03.minimality_2_2_alone=0.06}}; with the best K
# already gone, {{claim:ch03.minimality_2_2=0.09}} — the other movers cover for it a little. Every node changes the metric by at
# least {{claim:ch03.minimality_min=0.08}} for some K: nothing in the circuit is dead weight, though with τ = 0.02 that is a
# low bar. Our subsets are a sample: more of them can only raise a node's minimality, and
# incompleteness is bounded only over the ones we tried.
#
# ## Exercise 3.13 — self-repair
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 20 minutes
#
# Wang et al. knocked out GPT-2's name movers and found that the logit difference fell far less
# than the movers' own contribution: **backup name movers** took over. McGrath et al., *The
# Hydra Effect: Emergent Self-repair in Language Model Computations* (2023), found the same in
# other models. Does our model repair itself? To see, measure each head's **direct effect**: what
# its output, alone, adds to logit(IO) − logit(S) through the final norm and the unembedding —
# before and after ablating the top name mover.


# %%
def head_direct_effects(
    model: HookedModel, tokens: torch.Tensor, io: torch.Tensor, s: torch.Tensor, fwd_hooks=()
) -> torch.Tensor:
    """Each head's direct effect on logit(IO) - logit(S) at the last position, averaged over prompts.

    tokens: (batch, pos); io, s: (batch,) token ids. fwd_hooks: (name, fn) pairs active during
    the run (an ablation, say). Returns (n_layers, n_heads) on the tokens' device: the part of the
    logit difference that flows straight from the head's output (hook_z through W_O) to the
    logits, through the final norm with the scale of this very run. Summed over heads and
    added to the other components' direct effects, it gives the logit difference.
    """
    # BEGIN SOLUTION
    with model.hooks(fwd_hooks):
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name.endswith("attn.hook_z") or name == "ln_final.hook_scale"
        )
    with torch.no_grad():
        results = cache.stack_head_results(apply_ln=True)[:, :, -1]  # (layer * head, batch, d_model)
        return cache.logit_attrs(results, io, s).mean(-1).reshape(model.cfg.n_layers, model.cfg.n_heads)
    # END SOLUTION


ch03.check_head_direct_effects(head_direct_effects)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Cache every `hook_z` and the final norm's scale (`ln_final.hook_scale`) in one run with the
# hooks on (`with model.hooks(fwd_hooks): model.run_with_cache(...)`). The cache turns z into
# each head's output and puts it through the final norm; then dot with the unembedding
# direction of IO minus S.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `cache.stack_head_results(apply_ln=True)[:, :, -1]` is (layer × head, batch, d_model): each
# head's z @ W_O, centred, divided by this run's final scale and multiplied by the norm's
# weight. `cache.logit_attrs(stack, io, s)` dots it with W_U[:, io] − W_U[:, s] per prompt.
# Average over prompts, reshape to (n_layers, n_heads).
# </details>
#
# The top name mover is the head with the largest direct effect. We ablate it as Wang et al. do,
# with its mean output over the ABC prompts (so it stops carrying any particular name), and
# compare every head's direct effect before and after. For contrast we do the same with 2.2.

# %%
de_before = head_direct_effects(model, data.clean, data.io, data.s)
top = divmod(int(de_before.argmax()), model.cfg.n_heads)
_, abc_z = model.run_with_cache(data.abc, names_filter=z_names)
repair = {}
for layer, head in [top, (2, 2)]:
    mean_z = abc_z[f"blocks.{layer}.attn.hook_z"].mean(0, keepdim=True)

    def knock_out(z: torch.Tensor, hook: Hook, head: int = head, mean_z: torch.Tensor = mean_z) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = mean_z[:, :, head]
        return z

    knock = [(f"blocks.{layer}.attn.hook_z", knock_out)]
    de_after = head_direct_effects(model, data.clean, data.io, data.s, knock)
    with torch.no_grad():
        ld_after = logit_diff(model.run_with_hooks(data.clean, fwd_hooks=knock), data.io, data.s).mean().item()
    change = de_after - de_before
    own = -change[layer, head].item()
    change[layer, head] = 0
    repair[f"{layer}.{head}"] = change
    print(
        f"ablating {layer}.{head} (direct effect {de_before[layer, head]:.2f}): its direct effect falls by {own:.2f}; the logit difference by "
        f"{clean_ld - ld_after:.2f}; the other heads' direct effects change by {change.sum():+.2f}, "
        f"everything else (MLPs, embeddings) by {(clean_ld - ld_after) * -1 + own - change.sum():+.2f}"
    )
    if (layer, head) == top:
        claim("ch03.top_mover_de", de_before[layer, head])
        claim("ch03.top_mover_ld_drop", clean_ld - ld_after)
        claim("ch03.top_mover_other_heads", change.sum())
    else:
        claim("ch03.mover_2_2_de", own)
        claim("ch03.mover_2_2_ld_drop", clean_ld - ld_after)
        claim("ch03.mover_2_2_other_heads", change.sum())
print(f"top name mover (largest direct effect): {top[0]}.{top[1]}")
go.Figure(
    [go.Bar(name=f"{label} ablated", x=head_labels, y=change.flatten()) for label, change in repair.items()]
).update_layout(
    barmode="group",
    title="Change in each other head's direct effect when one name mover is ablated",
    yaxis_title="Δ direct effect",
)

# %% [markdown]
# **What to see:** the top name mover is **2.1**, with a direct effect of {{claim:ch03.top_mover_de=2.76}} (a quarter of the
# clean logit difference) — the head that resample ablation left out of the circuit because it
# looks at the IO in every prompt. Ablating it shows **no self-repair**: the logit difference
# falls by {{claim:ch03.top_mover_ld_drop=7.7}}, far *more* than its direct effect, and the other heads' direct effects fall too
# (by {{claim:ch03.top_mover_other_heads=−1.45}} in total, mostly 3.2): later components build on 2.1's output rather than back it
# up. The smaller mover 2.2 is a different story: its direct effect falls by {{claim:ch03.mover_2_2_de=0.69}}, yet the
# logit difference only by {{claim:ch03.mover_2_2_ld_drop=0.03}}; other heads gain {{claim:ch03.mover_2_2_other_heads=0.34}} (3.0, 3.2, 2.1) and the MLPs the rest.
# That is self-repair, for a small head. So this organism has backups for its minor movers and
# none for its main one — unlike GPT-2, where whole classes of backup name movers exist. We
# measured one ablation (mean over ABC) on one template; "no backup" means "none that this
# ablation reveals".

# %% [markdown]
# ## 8. Try it on GPT-2
#
# Wang et al. (2022) found the IOI circuit of GPT-2 small with these methods (path patching,
# mean ablation over the ABC distribution). The heads they report:
#
# | class | heads |
# |---|---|
# | name movers | 9.6, 9.9, 10.0 |
# | backup name movers | 9.0, 9.7, 10.1, 10.2, 10.6, 10.10, 11.2, 11.9 |
# | negative name movers | 10.7, 11.10 |
# | S-inhibition | 7.3, 7.9, 8.6, 8.10 |
# | induction | 5.5, 5.8, 5.9, 6.9 |
# | duplicate token | 0.1, 0.10, 3.0 |
# | previous token | 2.2, 4.11 |
#
# The cell below (network needed: it downloads GPT-2 small once, ~500 MB) runs the same head
# sweep on GPT-2 with the toy language's IOI sentences and the name-swap corruption. Compare
# the largest effects with the table: the swap changes only S2, so the heads that carry "which
# name is repeated" to the end (S-inhibition, in GPT-2) and the name movers that act on it are
# the ones to expect. (We could not run this cell where the course was written, offline; the
# head numbers above are the paper's, not ours.)

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    gdata = P.ioi_data(gpt2, n=8, seed=0)
    with torch.no_grad():
        g_clean = logit_diff(gpt2(gdata.clean), gdata.io, gdata.s).mean().item()
        g_corrupt = logit_diff(gpt2(gdata.corrupt), gdata.io, gdata.s).mean().item()

    def gpt2_metric(logits: torch.Tensor) -> torch.Tensor:
        k = logits.shape[0] // gdata.io.shape[0]
        return normalise(logit_diff(logits, gdata.io.repeat(k), gdata.s.repeat(k)), g_clean, g_corrupt).mean()

    g_heads = P.head_sweep(gpt2, gdata.corrupt, gdata.clean, gpt2_metric)
    top = g_heads.flatten().abs().argsort(descending=True)[:10]
    print(f"GPT-2 logit difference: clean {g_clean:+.2f}, swap {g_corrupt:+.2f}")
    n_heads = gpt2.cfg.n_heads
    print(
        "largest head effects:",
        ", ".join(f"{i // n_heads}.{i % n_heads} ({g_heads.flatten()[i]:+.2f})" for i in top.tolist()),
    )
    from IPython.display import display

    display(plot.imshow(g_heads, xlabel="head", ylabel="layer", title="GPT-2 small: denoising each head's output"))
else:
    print("Offline: skipping GPT-2. Everything above ran on the bundled toylang organism.")

# %% [markdown]
# ## 9. Try it on a real model
#
# Patching needs nothing family-specific: the same sweep runs on every family digsite supports
# (`docs/models.md`). Here it is on **Pythia-160m** (Biderman et al., 2023), a GPT-NeoX with
# parallel attention and MLP — patch `hook_attn_out` or `hook_z` there; it has no
# `hook_resid_mid`. `P.ioi_metric` builds the normalised logit-difference metric of section 1
# (1 = clean, 0 = name-swapped). Which heads light up in Pythia is an open question for you;
# the metric and the sweep are the same as for GPT-2 (we could not run this cell where the
# course was written, offline). Swap in `"google/gemma-2-2b"` on a GPU (gated: accept its licence
# and log in): there `hook_attn_out` is after Gemma's post-attention norm, so patching it is
# exact, while patching `hook_z` goes through that norm. Needs a network; skipped offline.

# %%
if online():
    real = load_model("EleutherAI/pythia-160m", device=device)
    rdata = P.ioi_data(real, n=8, seed=0)
    r_metric, r_clean, r_corrupt = P.ioi_metric(real, rdata)
    r_heads = P.head_sweep(real, rdata.corrupt, rdata.clean, r_metric)
    top = r_heads.flatten().abs().argsort(descending=True)[:10].tolist()
    n_heads = real.cfg.n_heads
    print(f"{real.cfg.architecture} logit difference: clean {r_clean:+.2f}, swap {r_corrupt:+.2f}")
    print(
        "largest head effects:", ", ".join(f"{i // n_heads}.{i % n_heads} ({r_heads.flatten()[i]:+.2f})" for i in top)
    )
    from IPython.display import display

    display(plot.imshow(r_heads, xlabel="head", ylabel="layer", title="Pythia-160m: denoising each head's output"))
else:
    print("Offline: skipping the real model (load_model needs the hub). Everything above ran on the bundled organism.")

# %% [markdown]
# ## Summary
#
# - A patching experiment is a clean/corrupt pair, a site and a metric. Choose the corruption so
#   that it changes exactly what the metric measures (ABC barely moves `logit(IO) − logit(S)` in
#   this model; the name swap flips it), and normalise: 1 = clean, 0 = corrupt.
# - Denoising (corrupt run, clean patch) finds what is sufficient; noising finds what is necessary.
# - Residual patching shows *where* the information is (S2, then END after layer 0); head
#   patching *which* heads (0.3); q/k/v/pattern patching *how* (0.3 through its values; the
#   name movers through their queries); path patching *which path* (0.3 → MLP 0 → the movers'
#   queries).
# - Attribution patching ranks every component with one backward pass (almost perfectly, here) but
#   underestimates large, nonlinear effects: verify with real patching.
# - Automatic circuit discovery is a loop of ablations; the circuit it finds depends on the
#   threshold and, above all, on the ablation.
# - A circuit claim is held to faithfulness, completeness and minimality (with knocked-out sets
#   K, so that backups show), in both directions: denoising tests sufficiency, noising necessity.
# - Knocking out a component can be repaired by others (the small mover 2.2 here) or amplified
#   (the top mover 2.1): measure direct effects before and after, do not assume either.
#
# To list what passes in your copy of this notebook: `python -m digsite.progress chapters/03_patching.ipynb`.
