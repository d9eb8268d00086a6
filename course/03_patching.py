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
# - Find the circuit automatically with an ACDC-style pruning loop, measure its faithfulness,
#   compare it with a hypothesis built from the task rule — and see how zero, mean and resample
#   ablation change the answer.
#
# **Prerequisites:** chapter 1 (hooks, `run_with_cache`, `run_with_hooks`, attention patterns);
# chapter 2 helps (logit attribution).
#
# **Time:** about 3 hours.
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
from digsite.nodes import Node
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
# <details><summary>Hint</summary>
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

    All three (batch, pos, head, d_head); corrupt_grad is d metric / d z on the corrupt run.
    Returns (head,): the sum over batch, positions and d_head of (clean - corrupt) * grad.
    """
    # BEGIN SOLUTION
    return ((clean_z - corrupt_z) * corrupt_grad).sum(dim=(0, 1, 3))
    # END SOLUTION


ch03.check_attribution_scores(attribution_scores)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Elementwise product of the *difference* and the gradient, then `.sum(dim=(0, 1, 3))`. The
# metric is a mean over prompts, so the gradient already carries the 1/batch: sum, do not average.
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
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Write the loop. `score(kept)` runs the clean prompts with every node *not* in `kept` ablated and
# returns the metric. Visit nodes from the last to the first; remove a node for good when the
# score falls by less than `threshold` compared with the *current* circuit.


# %%
def prune(nodes: list[Node], score, threshold: float) -> list[Node]:
    """ACDC-style greedy node pruning. nodes: in forward order. score(list of kept nodes) -> float.

    Returns the kept nodes, in forward order.
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
# <details><summary>Hint</summary>
#
# Keep `current = score(kept)` up to date after every accepted removal; the test is
# `score(trial) >= current - threshold`. Walk `reversed(nodes)` so that a node is judged after
# everything downstream of it has been settled.
# </details>
#
# Run it with resample ablation and τ = 0.02, and measure the **faithfulness** of the result: the
# metric with everything outside the circuit ablated (1 = the circuit alone does all the model
# does, 0 = nothing).

# %%
threshold = 0.02
circuits, faithfulness, empty = {}, {}, {}
for kind in values:
    score = lambda keep, kind=kind: P.circuit_score(model, data.clean, values[kind], keep, metric)
    circuits[kind] = prune(nodes, score, threshold)
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
#
# ## 7. Try it on GPT-2
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
# ## 8. Try it on a real model
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
#
# To list what passes in your copy of this notebook: `python -m digsite.progress chapters/03_patching.ipynb`.
