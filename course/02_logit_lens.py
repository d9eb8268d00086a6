# %% [markdown]
# # Chapter 2 — The logit lens, direct logit attribution and the tuned lens
#
# A transformer's residual stream is one vector per token that every block reads and adds to.
# The model only turns it into a prediction at the very end, through the final LayerNorm and
# the unembedding. So here is a cheeky question: what if we did that *early*? Decode the stream
# after every layer and you can watch a prediction take shape as information flows through the
# model. In this chapter you build that decoder (the **logit lens**), learn exactly where the
# final LayerNorm has to go, split the final prediction into the contributions of every head
# and MLP (**direct logit attribution**), and train a better decoder (the **tuned lens**).
#
# **Goals**
# - Decode every layer of the toy-language model with the logit lens and read off the layer
#   at which it "knows" the answer.
# - Understand why the final LayerNorm matters, and why attribution must use its *cached* scale.
# - Attribute a logit difference to every head and MLP, with attributions that add up exactly.
# - Measure where the logit lens fails (KL to the final output), and fix it with a tuned lens
#   whose training loop you write yourself, trained in seconds.
# - Optionally, trace one head's credit back through its values to the parts of the stream it
#   read, with attributions that still add up.
# - Explore any prompt interactively with a layer slider.
#
# **Prerequisites:** chapter 1 (hook names, `run_with_cache`, the residual stream); softmax,
# logits and KL divergence.
#
# **Time:** about 2 hours, plus about 70 minutes for the two optional exercises rated 4
# (2.9 and 2.10).
#
# **Readings**
# - nostalgebraist, [*interpreting GPT: the logit lens*](https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens) (2020) —
#   the original idea, with GPT-2 pictures.
# - Belrose et al., [*Eliciting Latent Predictions from Transformers with the Tuned Lens*](https://arxiv.org/abs/2303.08112) (2023) —
#   where the logit lens fails and the affine translators that fix it.
# - Elhage et al., [*A Mathematical Framework for Transformer Circuits*](https://transformer-circuits.pub/2021/framework/index.html) (2021) —
#   the residual stream as a sum, and direct logit attribution.
# - Wang et al., [*Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small*](https://arxiv.org/abs/2211.00593) (2022) —
#   the IOI task and the logit difference we attribute here.

# %%
import time

import plotly.graph_objects as go
import torch

from digsite import lens, load_model, plot, widgets
from digsite.checks import ch02
from digsite.claims import claim
from digsite.notebook import online, setup
from digsite.organisms import data
from digsite.threads import one_thread

device = setup(seed=0)
model = load_model("toylang", device=device)
n_layers = model.cfg.n_layers
print(model)

# %% [markdown]
# The toy-language organism is a 4-layer GPT-2 (d_model 128) trained on a small synthetic
# English: indirect-object sentences, "a cat is an animal" facts, number-word arithmetic and
# repeated text. Every word is one token. Our first prompt is an **indirect-object** sentence:
# the answer is the name that is *not* repeated.

# %%
prompt = "When Mary and John went to the store, John gave a drink to"
tokens = model.to_tokens(prompt)
logits, cache = model.run_with_cache(tokens)
probs = logits[0, -1].softmax(-1)
top = probs.topk(5)
print(model.to_str_tokens(prompt))
print("model's top 5:", [(model.to_string(i[None]), round(p.item(), 3)) for p, i in zip(top.values, top.indices)])

# %% [markdown]
# ## 1. The logit lens
#
# The model computes `logits = ln_final(x_final) @ W_U + b_U`, where `x_final` is the residual
# stream after the last block. The residual stream before block `l`, `x_l`, lives in the *same*
# space (every block only adds to it), so nothing stops us from computing
# `ln_final(x_l) @ W_U + b_U` for every `l`: the **logit lens**. It answers "what would the
# model say if the remaining blocks were skipped?".
#
# ## Exercise 2.1 — the residual stream at every layer
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Stack the residual stream *before* every block, then the one after the last block:
# `n_layers + 1` entries. Entry 0 is just the embeddings; the last entry is what the model
# unembeds.


# %%
def residual_stack(cache, n_layers: int) -> torch.Tensor:
    """The residual stream at every layer boundary, as one tensor.

    cache: an ActivationCache holding every blocks.{l}.hook_resid_pre and the last block's
    hook_resid_post; n_layers: the model's number of blocks.
    Returns (n_layers + 1, batch, pos, d_model): entry l is the stream entering block l (entry 0 is
    the embeddings), the last entry the stream the model unembeds.
    """
    # BEGIN SOLUTION
    pre = [cache[f"blocks.{l}.hook_resid_pre"] for l in range(n_layers)]
    return torch.stack([*pre, cache[f"blocks.{n_layers - 1}.hook_resid_post"]])
    # END SOLUTION


ch02.check_residual_stack(residual_stack)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# `blocks.{l}.hook_resid_pre` for every block, then `blocks.{n_layers-1}.hook_resid_post`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# A list comprehension over `range(n_layers)` for the `resid_pre`s, one more entry for the last
# `resid_post`, and `torch.stack` (which adds the new first dimension).
# </details>
#
# The cache has this built in, as in TransformerLens: `cache.accumulated_resid()` returns the
# same stack (labels `0_pre`, …, `final_post`).

# %%
stack = residual_stack(cache, n_layers)
print(stack.shape, torch.equal(stack, cache.accumulated_resid()))

# %% [markdown]
# ## Exercise 2.2 — decode every layer
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 10 minutes
#
# Decode every entry of the stack exactly as the model decodes its last one. The pieces you
# need: the final LayerNorm, `model.norm_module(None)`, and the unembedding, `model.W_U`
# (d_model, d_vocab) and `model.b_U` (d_vocab,). The last entry must give back the model's own
# logits.


# %%
def logit_lens(model, stack: torch.Tensor) -> torch.Tensor:
    """The logit lens: each entry decoded by the model's own output head.

    stack: (layer, ..., d_model), any number of leading dims. Returns logits (layer, ..., d_vocab):
    entry i is what the model would output if its residual stream were stack[i]. Each entry is
    decoded on its own (its own LayerNorm statistics), so the last entry of residual_stack gives
    back the model's logits.
    """
    # BEGIN SOLUTION
    return model.norm_module(None)(stack) @ model.W_U + model.b_U
    # END SOLUTION


ch02.check_logit_lens(logit_lens)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# The model computes `logits = ln_final(x) @ W_U + b_U` from its last stream `x`. Do the same
# to every entry.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# The final LayerNorm is a module (an `nn.LayerNorm`: it normalises over the last dimension,
# whatever the leading ones are): call it on the whole stack at once, and it recomputes the mean
# and the scale of every vector it is given. Then `@ model.W_U`, which contracts the last
# dimension, and add `model.b_U`.
# </details>
#
# Now the picture. Each cell below is the logit lens's top prediction for the *next* token,
# read after the input token of its column, at the layer of its row; the colour is its
# probability. The bottom row (`final_post`) is the model's real output. (`lens.lens_figure`
# does exactly what you just wrote, plus the plotting.)

# %%
lens.lens_figure(model, prompt)

# %%
with torch.no_grad():
    prompt_lens = logit_lens(model, stack)[:, 0].softmax(-1)  # (layer, pos, d_vocab)
word_id = {w: model.to_tokens(w, prepend_bos=False)[0, 0] for w in ("to", "six", "Mary")}
top_p, top_id = prompt_lens[:, -1].max(-1)
print(
    "top prediction at the last position, by layer:",
    [
        (label, model.to_string(i[None]), round(p.item(), 2))
        for label, p, i in zip(lens.stack_labels(n_layers), top_p, top_id)
    ],
)
claim("ch02.prompt_0_pre_to", prompt_lens[0, -1, word_id["to"]])
claim("ch02.prompt_row0_self", 100 * (prompt_lens[0, 1:].argmax(-1) == tokens[0, 1:]).float().mean())
claim("ch02.prompt_1_pre_six", prompt_lens[1, -1, word_id["six"]])
claim("ch02.prompt_2_pre_to", prompt_lens[2, -1, word_id["to"]])
claim("ch02.prompt_3_pre_mary", prompt_lens[3, -1, word_id["Mary"]])
claim("ch02.prompt_final_mary", prompt_lens[4, -1, word_id["Mary"]])

# %% [markdown]
# Read the last column, the position that predicts the answer. At `0_pre` the lens sees only
# the embedding of "to" and predicts… "to", with probability {{claim:ch02.prompt_0_pre_to=1.00}}. So does every column of
# that row (the input word is the top prediction at {{claim:ch02.prompt_row0_self=100%}} of the positions): this model, like
# GPT-2, **ties** its embedding and unembedding (`W_U = W_E.T`), so a word's embedding points
# most nearly along its own unembedding. At `1_pre` and `2_pre` the lens is unsure ("six"
# {{claim:ch02.prompt_1_pre_six=0.15}}, "to" {{claim:ch02.prompt_2_pre_to=0.38}}); at `3_pre`, the stream *entering* the last block, "Mary" is already on
# top with {{claim:ch02.prompt_3_pre_mary=0.94}}, and the output makes it {{claim:ch02.prompt_final_mary=1.00}}. The model has to *find* the
# name that is not repeated, which takes attention across the sentence; by the end of block 2
# it has.
#
# ## Exercise 2.3 — when does the model know the answer?
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# One prompt is an anecdote. Let us decode a batch of held-out prompts and, at each layer, read
# the probability and the **rank** of the correct answer (0 = top-1). Careful with batches:
# prompts have different lengths, and `model.to_tokens` pads the shorter ones on the *right*,
# so position `-1` is padding for them. `lens.prompt_batch` returns each prompt's last real
# position, `final_pos`; that is where the next token (the answer) is predicted.


# %%
def answer_prob_and_rank(
    lens_logits: torch.Tensor, final_pos: torch.Tensor, answer_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probability and rank of each prompt's answer at its last real position, at every layer.

    lens_logits: (layer, batch, pos, d_vocab); final_pos: (batch,) each prompt's last real
    position; answer_ids: (batch,) token ids.
    Returns probs (layer, batch), each in [0, 1], and ranks (layer, batch), integers: how many
    tokens have a strictly higher logit than the answer (0 = the answer is the top-1
    prediction). Positions after final_pos[b] (padding) never matter.
    """
    # BEGIN SOLUTION
    batch = torch.arange(lens_logits.shape[1], device=lens_logits.device)
    at_pos = lens_logits[:, batch, final_pos]  # (layer, batch, d_vocab)
    answer_logit = at_pos[:, batch, answer_ids]  # (layer, batch)
    probs = at_pos.softmax(-1)[:, batch, answer_ids]
    ranks = (at_pos > answer_logit[..., None]).sum(-1)
    return probs, ranks
    # END SOLUTION


ch02.check_answer_prob_and_rank(answer_prob_and_rank)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# First cut every prompt down to its one position, giving (layer, batch, d_vocab); then both
# numbers are per row of that.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# Index with two aligned index tensors: `lens_logits[:, torch.arange(batch), final_pos]` picks,
# for each prompt `b`, position `final_pos[b]`, giving (layer, batch, d_vocab). Do the same with
# `answer_ids` on the last dimension. The rank is a comparison and a sum.
# </details>
#
# We use 200 held-out indirect-object prompts (name pairs and places the model never saw
# together) and 200 is-a / located-in facts ("a cat is an" → animal, "Paris is in" → France).
# We only need the residual stream, so we cache just those hook points.


# %%
def lens_on_task(texts: list[str], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit-lens p(answer) and rank (layer, batch) for prompts `texts` with one-token `answers`."""
    task_tokens, final_pos = lens.prompt_batch(model, texts)
    answer_ids = model.to_tokens(answers, prepend_bos=False)[:, 0]
    _, task_cache = model.run_with_cache(task_tokens, names_filter=lens.resid_names(n_layers))
    with torch.no_grad():
        return answer_prob_and_rank(logit_lens(model, residual_stack(task_cache, n_layers)), final_pos, answer_ids)


ioi = data.ioi_prompts(200, seed=1, split="heldout")
facts = data.fact_prompts(200, seed=1)
tasks = {
    "indirect object": ([p.text for p in ioi], [p.answer for p in ioi]),
    "facts": ([t for t, _ in facts], [a for _, a in facts]),
}
lens_results = {name: lens_on_task(*task) for name, task in tasks.items()}
labels = lens.stack_labels(n_layers)

# %% [markdown]
# For each task: the mean probability of the answer and the fraction of prompts where it is
# top-1, at every layer; then, per prompt, the first layer from which the answer *stays* top-1
# (`lens.first_top1_layer`), summarised by its median over prompts.

# %%
for name, (p, r) in lens_results.items():
    print(f"{name}:")
    print("   layer        " + "  ".join(f"{l:>10}" for l in labels))
    print("   p(answer)    " + "  ".join(f"{v:>10.3f}" for v in p.mean(1)))
    print("   top-1 rate   " + "  ".join(f"{v:>10.2f}" for v in (r == 0).float().mean(1)))

# %%
for name, (p, r) in lens_results.items():
    print(f"{name}: the answer first becomes top-1 (and stays) at {labels[int(lens.first_top1_layer(r).median())]}")
    claim("ch02.first_top1_layer", lens.first_top1_layer(r).median())
    claim("ch02.final_p", p.mean(1)[-1])
(ioi_p, ioi_r), (fact_p, fact_r) = lens_results["indirect object"], lens_results["facts"]
claim("ch02.ioi_p_3_pre", ioi_p.mean(1)[3])
claim("ch02.fact_p_3_pre", fact_p.mean(1)[3])
claim("ch02.fact_top1_1_pre", 100 * (fact_r[1] == 0).float().mean())
claim("ch02.fact_p_1_pre", fact_p.mean(1)[1])
claim("ch02.ioi_top1_1_pre", 100 * (ioi_r[1] == 0).float().mean())
claim("ch02.ioi_p_1_pre", ioi_p.mean(1)[1])

# %%
plot.line(
    {
        f"{name}: {what}": v
        for name, (p, r) in lens_results.items()
        for what, v in (("p(answer)", p.mean(1)), ("top-1 rate", (r == 0).float().mean(1)))
    },
    x=labels,
    title="Logit lens: how sure is the model of the answer, layer by layer?",
    xlabel="layer",
    ylabel="",
)

# %% [markdown]
# **What to see.** For both tasks the answer first becomes top-1 at `{{claim:ch02.first_top1_layer=3}}_pre`: blocks 0–2 do
# the finding, and the last block turns a fair guess (mean p {{claim:ch02.ioi_p_3_pre=0.68}} for indirect objects, {{claim:ch02.fact_p_3_pre=0.49}}
# for facts) into a near-certainty ({{claim:ch02.final_p=0.99}}). Facts show up a little earlier: after block 0 the
# answer is already top-1 for {{claim:ch02.fact_top1_1_pre=10%}} of them (p {{claim:ch02.fact_p_1_pre=0.045}}), for only {{claim:ch02.ioi_top1_1_pre=0.5%}} of the indirect objects
# (one prompt in 200; p {{claim:ch02.ioi_p_1_pre=0.004}}).
# "cat" → "animal" is a lookup on one earlier word; the indirect object has to be found by
# comparing the names across the sentence.
#
# ## 2. Why the final LayerNorm matters
#
# What if we forgot the LayerNorm and unembedded the raw stream? The LayerNorm centres the
# stream, divides it by its size and applies a learned weight and bias (this model's weight
# averages {{claim:ch02.ln_weight_mean=1.45}}): all things `W_U` was trained to expect. Compare p(answer) on the
# indirect-object prompts with and without it, and the KL divergence from the model's real
# output at the last entry (0 means "identical"; you will write `kl_to_final` in 2.7). We keep
# the hook points the rest of the chapter needs: the residual stream, the embeddings, every
# head's `z`, the MLP outputs and the final LayerNorm's scale.

# %%
texts, answers = tasks["indirect object"]
task_tokens, final_pos = lens.prompt_batch(model, texts)
answer_ids = model.to_tokens(answers, prepend_bos=False)[:, 0]
task_logits, task_cache = model.run_with_cache(
    task_tokens,
    names_filter=lambda name: name.endswith(
        ("resid_pre", "resid_post", "embed", "hook_z", "mlp_out", "ln_final.hook_scale")
    ),
)
task_stack = residual_stack(task_cache, n_layers)
batch = torch.arange(len(texts), device=device)
final_logits = task_logits[batch, final_pos]
with torch.no_grad():
    with_ln = logit_lens(model, task_stack)
    without_ln = task_stack @ model.W_U + model.b_U
ln_check = {}
for name, lens_logits in (("with ln_final", with_ln), ("without ln_final", without_ln)):
    p, _ = answer_prob_and_rank(lens_logits, final_pos, answer_ids)
    kl = lens.kl_to_final(lens_logits[-1:, batch, final_pos], final_logits)[0]
    ln_check[name] = (p.mean(1)[-1], kl)
    print(f"{name:>17}: p(answer) by layer {[round(v, 3) for v in p.mean(1).tolist()]}, KL at the output {kl:.3f}")
claim("ch02.ln_weight_mean", model.norm_module(None).weight.detach().mean())
claim("ch02.with_ln_kl", ln_check["with ln_final"][1])
claim("ch02.with_ln_p", ln_check["with ln_final"][0])
claim("ch02.without_ln_p", ln_check["without ln_final"][0])

# %% [markdown]
# With the LayerNorm the last entry *is* the model (KL {{claim:ch02.with_ln_kl=0.000}}, p {{claim:ch02.with_ln_p=0.994}}); without it even the final
# stream gives a different distribution (p {{claim:ch02.without_ln_p=0.956}}). Early on, dropping the LayerNorm makes the
# lens look less sure of the wrong answer only because the embeddings are small vectors whose
# raw logits are nearly flat: it is not a better lens, just a differently scaled one.
#
# ### One stream, or parts of a stream?
#
# LayerNorm is `ln(x) = (x - mean(x)) / scale(x) * w + b`, with
# `scale(x) = sqrt(mean((x - mean(x))²) + eps)`. Its centring is linear but its division is
# not: `scale` depends on `x`. That matters in two different ways.
#
# - **The logit lens** puts a *whole* residual stream `x_l` through the LayerNorm. The honest
#   question "what if the model stopped here?" wants `x_l`'s own scale — recomputed, exactly as
#   the module does. That is what you wrote in 2.2, and what nostalgebraist and the tuned-lens
#   paper do.
# - **Attribution** splits *one* stream into parts, `x_final = embed + pos_embed + Σ heads +
#   Σ MLPs`, and asks what each part contributes to the logits. If every part is divided by
#   the *same* number — the scale the model actually used, `ln_final.hook_scale`, cached during
#   the forward pass — the LayerNorm becomes a linear map, and the parts' contributions add up
#   exactly to the model's output. Re-normalising each part by its own scale would give every
#   part a "full-size" vector and the sum would mean nothing.
#
# ## Exercise 2.4 — the final LayerNorm on a stack of parts, with the cached scale
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 10 minutes
#
# Write the final LayerNorm as the *linear* map it becomes once its scale is frozen at the value
# the model used, `cache["ln_final.hook_scale"]` (batch, pos, 1), and apply it to every part.
# The bias `b` is a constant that belongs to no part: adding it to each of 10 parts would count
# it 10 times, so leave it out.


# %%
def apply_ln_to_stack(stack: torch.Tensor, cache, model) -> torch.Tensor:
    """The final LayerNorm with its scale frozen at the cached value, without its bias, on each part.

    stack: (component, batch, pos, d_model), parts of the final residual stream (any number of
    parts); cache: holds ln_final.hook_scale (batch, pos, 1); model: gives the final LayerNorm.
    Returns (component, batch, pos, d_model). Linear in stack; summed over components, plus the
    LayerNorm's bias, it equals ln_final's output (cache["ln_final.hook_out"]) when the parts sum
    to the final stream.
    """
    # BEGIN SOLUTION
    centred = stack - stack.mean(-1, keepdim=True)
    return centred / cache["ln_final.hook_scale"] * model.norm_module(None).weight
    # END SOLUTION


ch02.check_apply_ln_to_stack(apply_ln_to_stack)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# LayerNorm is `(x − mean(x)) / scale(x) · w + b`. With `scale` a fixed number per position,
# every step but the bias is linear: centring, dividing, multiplying by `w`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `stack - stack.mean(-1, keepdim=True)`, then `/ cache["ln_final.hook_scale"]` (it broadcasts
# over the component dimension), then `* model.norm_module(None).weight`.
# </details>
#
# Check the linearity on our prompt: `cache.decompose_resid()` gives the embeddings and every
# block's attention and MLP output, which sum to the final stream. Through your function they
# sum to the LayerNorm's real output; re-normalised one by one, they do not.

# %%
parts, part_labels = cache.decompose_resid(return_labels=True)
ln_final = model.norm_module(None)
with torch.no_grad():
    cached_sum = apply_ln_to_stack(parts, cache, model).sum(0) + ln_final.bias
    renormalised_sum = (ln_final(parts) - ln_final.bias).sum(0) + ln_final.bias
print(part_labels)
print("cached scale:     max |sum - ln_final output| =", f"{(cached_sum - cache['ln_final.hook_out']).abs().max():.1e}")
print(
    "re-normalised:    max |sum - ln_final output| =",
    f"{(renormalised_sum - cache['ln_final.hook_out']).abs().max():.1e}",
)

# %% [markdown]
# ### Two logit lenses
#
# TransformerLens's `cache.accumulated_resid(apply_ln=True)` — and ours, which follows it —
# applies the final LayerNorm to every layer with the **cached final scale** too, so that the
# logit lens and the attributions below live on one linear scale. For the *probabilities* of
# the logit lens that is a different lens from yours: early residual streams are smaller than
# the final one, so dividing them by the final scale shrinks their logits and flattens their
# distributions. Here is p(answer) on the indirect-object prompts both ways:

# %%
with torch.no_grad():
    renorm_p, _ = answer_prob_and_rank(with_ln, final_pos, answer_ids)
    cached_p, _ = answer_prob_and_rank(
        task_cache.accumulated_resid(apply_ln=True) @ model.W_U + model.b_U, final_pos, answer_ids
    )
print(
    "norm of the residual stream at the last position, by layer:",
    [round(v, 1) for v in task_stack[:, batch, final_pos].norm(dim=-1).mean(1).tolist()],
)
plot.line(
    {
        "recomputed scale (nostalgebraist, tuned lens)": renorm_p.mean(1),
        "cached final scale (TransformerLens)": cached_p.mean(1),
    },
    x=labels,
    title="p(answer) under two logit lenses",
    xlabel="layer",
    ylabel="mean p(answer)",
)

# %% [markdown]
# They agree at the output (same stream, same scale) and differ before it. Neither is wrong:
# the recomputed one is the better *decoder*; the cached one is the one whose pieces add up. Use
# the first to read what a layer predicts, the second to split a prediction into parts.
#
# **Why TransformerLens's numbers can differ from ours.** By default `HookedTransformer`
# does not run the Hugging Face weights as they are. It *folds* each LayerNorm's weight `w` and
# bias `b` into the next linear layer (for the final one: `W_U ← diag(w) W_U`,
# `b_U ← b_U + b W_U`); it *centres* the weights that write into the residual stream, so every
# part already has mean 0; it *centres* `W_U` (subtracts each row's mean over the vocabulary,
# which shifts all the logits of a position by the same amount); and it *folds the value
# biases* into `b_O` (attention weights sum to 1, so a head's value bias adds the same
# `b_V W_O` at every position: TransformerLens moves it into the block's bias). We run the raw
# Hugging Face weights and apply the LayerNorm's centring, cached scale, weight and bias
# ourselves. So:
# - the model's probabilities and logit *differences* agree, and so do the attributions of
#   embeddings, whole attention blocks and MLPs to a logit difference (every step above is an
#   exact re-parametrisation, and a logit difference ignores a shift shared by all logits);
# - a single raw logit, or an attribution to a single logit, differs by the `W_U` centring;
# - a single *head's* attribution differs by its folded value bias (our heads keep it; the sum
#   of a block's heads and its `b_O` agrees);
# - TransformerLens's `apply_ln_to_stack` has no bias to add (it went into `b_U`); ours lists
#   the constant term separately;
# - and a logit lens built on `accumulated_resid(apply_ln=True)` uses the cached final scale,
#   unlike the recomputed lens of 2.2, as we just saw.
#
# ## 3. Direct logit attribution
#
# The final stream is a sum of parts, and with the cached scale the map to logits is linear,
# so each part's **direct** effect on the logits is its own term. For indirect-object sentences
# the natural metric is the **logit difference** `logit(IO) − logit(S)` ("Mary" minus "John"):
# how much more the model prefers the right name over the repeated one. "Direct" means the
# path from the part straight to the unembedding; a head that helps only by feeding a later
# head gets no direct credit (chapter 3's patching finds those).
#
# ## Exercise 2.5 — every head's part of the stream
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# An attention block's output is a sum: one term per head, plus the block's output bias. Split
# the final stream into embeddings, every head's output, every block's bias and every MLP's
# output. What you have: each head's mixed values `cache["blocks.{l}.attn.hook_z"]`
# (batch, pos, head, d_head), the output weights `model.W_O` (layer, head, d_head, d_model) and
# biases `model.b_O` (layer, d_model), and the cached embeddings and MLP outputs.


# %%
def decompose_by_head(cache, model) -> torch.Tensor:
    """The final residual stream split into embeddings, every head, every attention bias, every MLP.

    cache: holds hook_embed, hook_pos_embed and every block's attn.hook_z and hook_mlp_out.
    Returns (2 + n_layers * (n_heads + 2), batch, pos, d_model) in the order
    embed, pos_embed, [L0H0, ..., L0H{n-1}, L0 b_O, L0 MLP], [L1H0, ...], ...
    Invariant: the entries sum to blocks.{n_layers-1}.hook_resid_post (to float precision); the
    heads of a block plus its b_O entry sum to its hook_attn_out.
    """
    # BEGIN SOLUTION
    embed = cache["hook_embed"]
    out = [embed, cache["hook_pos_embed"]]
    for l in range(model.cfg.n_layers):
        heads = torch.einsum("bphd,hdm->hbpm", cache[f"blocks.{l}.attn.hook_z"], model.W_O[l])
        out += [*heads, model.b_O[l].expand_as(embed), cache[f"blocks.{l}.hook_mlp_out"]]
    return torch.stack(out)
    # END SOLUTION


ch02.check_decompose_by_head(decompose_by_head)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# `attn_out = Σ_h z_h @ W_O[l, h] + b_O[l]`: each term of that sum is one part. The bias
# `b_O[l]` has no batch or position dims, but every part must have them.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `torch.einsum("bphd,hdm->hbpm", z, model.W_O[l])` gives one (batch, pos, d_model) output per
# head; unpack it into the list with `*`. `model.b_O[l].expand_as(cache["hook_embed"])` makes the
# bias a (batch, pos, d_model) part.
# </details>
#
# A pass means more than "same numbers as the reference": the check also added your parts up
# and got the final residual stream back. The labels, in the same order:

# %%
head_labels = ["embed", "pos_embed"]
for l in range(n_layers):
    head_labels += [f"L{l}H{h}" for h in range(model.cfg.n_heads)] + [f"L{l} b_O", f"L{l} MLP"]
print(head_labels)

# %% [markdown]
# ## Exercise 2.6 — direct logit attribution that adds up
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 20 minutes
#
# For each prompt, at its last real position, give every part its share of the logit
# difference `logit[correct] − logit[wrong]`, through the final LayerNorm with its cached scale
# (your `apply_ln_to_stack`) and the unembedding. What belongs to no part — the LayerNorm's bias
# and the unembedding's bias — goes into one last row, the **constant term**. Then the rows sum
# to the model's logit difference *exactly* — the check holds you to it.


# %%
def direct_logit_attribution(
    model, cache, parts: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor, final_pos: torch.Tensor
) -> torch.Tensor:
    """Each part's direct contribution to logit[correct] - logit[wrong] at each prompt's last position.

    parts: (component, batch, pos, d_model), summing to the final residual stream (any split).
    cache: holds ln_final.hook_scale. correct, wrong: (batch,) token ids; final_pos: (batch,).
    Returns (component + 1, batch): row c is part c's contribution through the final LayerNorm
    (scale frozen at its cached value) and the unembedding; the last row is the constant term
    (what the LayerNorm's bias and b_U add). Invariant: each column sums to the model's
    logit[b, final_pos[b], correct[b]] - logit[b, final_pos[b], wrong[b]]; swapping correct and
    wrong negates every row.
    """
    # BEGIN SOLUTION
    batch = torch.arange(parts.shape[1], device=parts.device)
    normed = apply_ln_to_stack(parts, cache, model)[:, batch, final_pos]  # (component, batch, d_model)
    direction = (model.W_U[:, correct] - model.W_U[:, wrong]).T  # (batch, d_model)
    attrs = (normed * direction).sum(-1)
    const = direction @ model.norm_module(None).bias + model.b_U[correct] - model.b_U[wrong]
    return torch.cat([attrs, const[None]])
    # END SOLUTION


ch02.check_direct_logit_attribution(direct_logit_attribution)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# `logit[c] − logit[w] = (ln_final(x) @ (W_U[:, c] − W_U[:, w])) + b_U[c] − b_U[w]`, and with the
# scale frozen `ln_final(x) = Σ_parts apply_ln_to_stack(part) + b`. So each part's share is its
# normalised value dotted with the logit-difference direction `W_U[:, correct] − W_U[:, wrong]`;
# the constant is `b` dotted with it, plus `b_U[correct] − b_U[wrong]`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `apply_ln_to_stack(parts, cache, model)[:, batch, final_pos]` with `batch = torch.arange(B)`
# gives (component, batch, d_model). The direction is `(model.W_U[:, correct] - model.W_U[:, wrong]).T`
# (batch, d_model); multiply and sum over `d_model`. The constant row has shape (1, batch).
# </details>
#
# Now on the 200 held-out indirect-object prompts, with the logit difference IO − S:

# %%
io_ids = model.to_tokens([p.io for p in ioi], prepend_bos=False)[:, 0]
s_ids = model.to_tokens([p.s for p in ioi], prepend_bos=False)[:, 0]
with torch.no_grad():
    attrs = direct_logit_attribution(model, task_cache, decompose_by_head(task_cache, model), io_ids, s_ids, final_pos)
logit_diff = task_logits[batch, final_pos, io_ids] - task_logits[batch, final_pos, s_ids]
print(f"mean logit difference IO - S: {logit_diff.mean():.3f}; sum of mean attributions: {attrs.mean(1).sum():.3f}")
print(f"largest |sum of attributions - logit difference| over prompts: {(attrs.sum(0) - logit_diff).abs().max():.1e}")
mean_attrs = attrs.mean(1)
order = mean_attrs.abs().argsort(descending=True)
all_labels = head_labels + ["constant"]
print("largest direct contributions:", ", ".join(f"{all_labels[i]} {mean_attrs[i]:+.2f}" for i in order[:5]))
attr_of = dict(zip(all_labels, mean_attrs.tolist()))
claim("ch02.dla_logit_diff", logit_diff.mean())
claim("ch02.dla_sum_error", (attrs.sum(0) - logit_diff).abs().max())
claim("ch02.dla_mlp3", attr_of["L3 MLP"])
claim("ch02.dla_mlp2", attr_of["L2 MLP"])
claim("ch02.dla_top_head", max(v for k, v in attr_of.items() if "H" in k))
claim("ch02.dla_l3h2", attr_of["L3H2"])

# %%
head_grid = torch.stack(
    [
        mean_attrs[2 + l * (model.cfg.n_heads + 2) : 2 + l * (model.cfg.n_heads + 2) + model.cfg.n_heads]
        for l in range(n_layers)
    ]
)
plot.imshow(
    head_grid,
    x=[f"H{h}" for h in range(model.cfg.n_heads)],
    y=[f"L{l}" for l in range(n_layers)],
    title="Direct logit attribution of each head to logit(IO) − logit(S)",
    xlabel="head",
    ylabel="layer",
    text=True,
)

# %% [markdown]
# **What to see.** The attributions add up to the model's logit difference ({{claim:ch02.dla_logit_diff=11.08}} on average)
# to float precision (the largest gap over prompts is {{claim:ch02.dla_sum_error=0.0000}} to four decimals). The surprise is *who* gets the
# credit: not heads, as with GPT-2's "name mover" heads, but the MLPs of blocks 3 and 2
# (+{{claim:ch02.dla_mlp3=4.79}} and +{{claim:ch02.dla_mlp2=2.61}}); the largest single head, L3H2, adds +{{claim:ch02.dla_l3h2=0.98}} (and no head adds more:
# the largest is +{{claim:ch02.dla_top_head=0.98}}). Yet an MLP works on one position at a time: it cannot see "Mary"
# three words back. Something must have moved the name's information to the last position
# first — an attention head whose effect is **indirect**, through the MLP, and so invisible to
# direct logit attribution. Chapter 3's patching finds it. (Section 8 takes one step back along
# a head's path: which parts of the stream did the head itself read?)
#
# The same works for facts. For "a X is an" the article already narrows the category to
# "animal" or "instrument", so the logit difference animal − instrument asks what tells them
# apart:

# %%
an_facts = [(t, a) for t, a in data.fact_prompts(400, seed=2) if t.endswith(" is an") and a == " animal"][:50]
fact_tokens, fact_pos = lens.prompt_batch(model, [t for t, _ in an_facts])
_, fact_cache = model.run_with_cache(fact_tokens)
animal, instrument = (model.to_tokens([w], prepend_bos=False)[0, 0] for w in ("animal", "instrument"))
n_fact = len(an_facts)
with torch.no_grad():
    fact_attrs = direct_logit_attribution(
        model, fact_cache, fact_cache.decompose_resid(), animal.repeat(n_fact), instrument.repeat(n_fact), fact_pos
    )
fact_labels = cache.decompose_resid(return_labels=True)[1] + ["constant"]
print(f"{n_fact} prompts 'a X is an' (X an animal); mean attribution to logit(animal) - logit(instrument):")
print(", ".join(f"{name} {v:+.2f}" for name, v in zip(fact_labels, fact_attrs.mean(1))))
fact_attr_of = dict(zip(fact_labels, fact_attrs.mean(1).tolist()))
claim("ch02.fact_attn2", fact_attr_of["2_attn_out"])
claim("ch02.fact_mlp3", fact_attr_of["3_mlp_out"])

# %% [markdown]
# Here we attributed to whole blocks (`cache.decompose_resid()`), and your function took them
# unchanged: any parts that sum to the stream will do. The picture is a tidy two-step: block
# 2's attention (+{{claim:ch02.fact_attn2=4.15}}) brings the subject to the last position, and block 3's MLP (+{{claim:ch02.fact_mlp3=7.67}})
# turns "it is a cat" into "animal, not instrument".
#
# ## 4. Where the logit lens fails, and the tuned lens
#
# The logit lens assumes every layer speaks the output's language. Early layers often do not:
# their stream holds information in directions the final LayerNorm and `W_U` were never trained
# to read. Belrose et al. measure the gap as the KL divergence from the model's final
# distribution to the lens's, per layer, and close it with a **tuned lens**: one learned affine
# translator per layer, `h ↦ h + A_l h + b_l`, trained to make the lens match the final output.
#
# ## Exercise 2.7 — KL to the final output
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# How far is each layer's lens from what the model finally predicts? The KL divergence
# `KL(final ‖ lens)`, in nats, averaged over positions. The direction matters: we ask how badly
# the lens misses what the model actually predicts, so the model's distribution is the
# reference.


# %%
def kl_to_final(lens_logits: torch.Tensor, final_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(final || lens), per layer, in nats.

    lens_logits: (layer, n, d_vocab) and final_logits: (n, d_vocab), unnormalised logits.
    Returns (layer,): each entry >= 0, exactly 0 where a layer's distribution equals the final
    one at every position; unchanged when a constant is added to the logits of a position.
    """
    # BEGIN SOLUTION
    final = final_logits.log_softmax(-1)
    return (final.exp() * (final - lens_logits.log_softmax(-1))).sum(-1).mean(-1)
    # END SOLUTION


ch02.check_kl_to_final(kl_to_final)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# `KL(p ‖ q) = Σ_v p(v) (log p(v) − log q(v))`, with `p` the final distribution. Work with
# log-probabilities (`log_softmax`) for numerical stability, never with `softmax(...).log()`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# With `lp = final_logits.log_softmax(-1)` and `lq = lens_logits.log_softmax(-1)`:
# `(lp.exp() * (lp - lq)).sum(-1)` is (layer, n); then `.mean(-1)`.
# </details>
#
# We measure on every real token position of toy-language text the lens was not trained on.
# `lens.collect_positions` runs the model over the texts and keeps, at every non-padding
# position, the residual stack and the model's logits.

# %%
train_stack, train_final = lens.collect_positions(model, data.toylang_texts(200, seed=1_000_001))
eval_stack, eval_final = lens.collect_positions(model, data.toylang_texts(100, seed=1_000_002))
print("positions: train", train_stack.shape[1], "eval", eval_stack.shape[1])
with torch.no_grad():
    kl_logit = kl_to_final(logit_lens(model, eval_stack), eval_final)
print("logit lens KL to final, by layer:", [round(v, 2) for v in kl_logit.tolist()])
claim("ch02.kl_logit_embed", kl_logit[0])

# %% [markdown]
# The KL falls layer by layer and is 0 at the output, as it must be. The embeddings are the
# worst by far ({{claim:ch02.kl_logit_embed=14.54}} nats): remember the first row of the lens picture, where the logit lens
# predicted each input word itself.
#
# ## Exercise 2.8 — the tuned lens
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Given one `nn.Linear(d_model, d_model)` translator per block (`translators[l]` for
# `resid_pre` of block `l`), decode the stack through the tuned lens. Following Belrose et al.,
# a translator learns a *correction* to the stream (a skip connection around it), so a
# translator with zero weight and bias changes nothing: the tuned lens then *is* the logit lens,
# and training starts from it. The final entry is the model's output and is never translated.


# %%
def tuned_lens_logits(model, stack: torch.Tensor, translators: torch.nn.ModuleList) -> torch.Tensor:
    """The tuned lens: each block's resid_pre translated by its own translator, then the logit lens.

    stack: (n_layers + 1, ..., d_model); translators: n_layers nn.Linear(d_model, d_model),
    translators[l] for entry l. Returns logits (n_layers + 1, ..., d_vocab). With zero
    translators it equals logit_lens(model, stack); the last entry always does.
    """
    # BEGIN SOLUTION
    translated = [h + t(h) for h, t in zip(stack[:-1], translators)]
    return logit_lens(model, torch.stack([*translated, stack[-1]]))
    # END SOLUTION


ch02.check_tuned_lens_logits(tuned_lens_logits)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# Entry `l < n_layers` becomes `h + translators[l](h)`; the last entry stays as it is. Then
# decode everything with your `logit_lens`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# `zip(stack[:-1], translators)` pairs each block's stream with its translator; stack the
# translated entries with `stack[-1]` and call your `logit_lens`.
# </details>
#
# ## Exercise 2.9 — train the tuned lens yourself
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵⚪⚪ · about 30 minutes · optional
#
# Now the training, the part a library usually does for you (here `lens.train_tuned_lens`).
# Belrose et al. train every translator at once to make its layer's tuned lens match the
# model's final distribution: the loss is the KL divergence of 2.7, one term per layer, on
# minibatches of cached positions, minimised with Adam. The model is frozen; only the
# translators learn.
#
# Your loop is checked against the package's own trainer: on the same stack, with the same
# seed, minibatch size, learning rate and number of steps, your translators must come out the
# same (to 1e-4) and your loss curve must be the same curve. For that, every choice a loop
# makes must be pinned down — where the translators start, which positions each step sees, what
# the loss sums and what it averages — so the docstring states each one. Write the function at the top of its cell, using only its
# arguments and your earlier answers (`tuned_lens_logits`, `kl_to_final`).


# %%
def train_translators(
    model, stack: torch.Tensor, final_logits: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int
) -> tuple[torch.nn.ModuleList, list[float]]:
    """Train one affine translator per block so that the tuned lens matches the model's output.

    stack: (n_layers + 1, n_positions, d_model), the residual stack at cached positions (as from
    lens.collect_positions); final_logits: (n_positions, d_vocab), the model's logits there.
    Returns (translators, losses):
    - translators: n_layers nn.Linear(d_model, d_model) on stack's device, for tuned_lens_logits.
      They start as the identity translation (zero weight and bias: the tuned lens starts as the
      logit lens).
    - losses: `steps` floats, the loss of each step, computed before that step's update.
    Each step: draw batch_size positions uniformly with replacement, as
    torch.randint(n_positions, (batch_size,), generator=g), from ONE torch.Generator (on the CPU)
    seeded once with `seed` before the first step; the loss is the sum over the n_layers
    translated entries of the mean KL(final || tuned lens) over those positions; then one step
    of torch.optim.Adam(lr=lr, otherwise torch's defaults) over the translators' parameters only.
    The model and the inputs are not changed.
    """
    # BEGIN SOLUTION
    n_layers, n_positions, d_model = stack.shape[0] - 1, stack.shape[1], stack.shape[2]
    translators = torch.nn.ModuleList(torch.nn.Linear(d_model, d_model) for _ in range(n_layers)).to(stack.device)
    for translator in translators:
        torch.nn.init.zeros_(translator.weight)
        torch.nn.init.zeros_(translator.bias)
    optimiser = torch.optim.Adam(translators.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(n_positions, (batch_size,), generator=gen).to(stack.device)
        lens_logits = tuned_lens_logits(model, stack[:, idx], translators)[:-1]  # (n_layers, batch, d_vocab)
        loss = kl_to_final(lens_logits, final_logits[idx]).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return translators, losses
    # END SOLUTION


ch02.check_train_translators(train_translators)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# A training loop has four lines that matter: a minibatch, a loss, `zero_grad` + `backward`, an
# optimiser `step`. Everything else is setting up what they act on: the translators (built, then
# their weight and bias set to zero with `torch.nn.init.zeros_`), the optimiser over
# `translators.parameters()`, and the generator.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# Each step: `idx = torch.randint(n_positions, (batch_size,), generator=gen).to(stack.device)`,
# then `tuned_lens_logits(model, stack[:, idx], translators)[:-1]` is (n_layers, batch, d_vocab),
# and `kl_to_final(that, final_logits[idx]).sum()` is the loss. Record `loss.item()`.
# Gradients reach the model's weights too (they are on the path), but the optimiser only steps
# the translators, so the model stays as it is.
# </details>
#
# Train on the 200 texts' positions, 200 steps of 512 positions, and the package's trainer with
# the same settings next to it. The translators go into the package's `TunedLens` module, which
# the figures and the explorer below use.

# %%
with one_thread():  # one thread: the CPU time then measures the work, not threads waiting
    start = time.process_time()
    translators, losses = train_translators(model, train_stack, train_final, steps=200, batch_size=512, lr=3e-3, seed=0)
    train_seconds = time.process_time() - start
package_tuned, package_losses = lens.train_tuned_lens(
    model, train_stack, train_final, steps=200, batch_size=512, lr=3e-3, seed=0, progress=False
)
tuned = lens.TunedLens(n_layers, model.cfg.d_model).to(device)
tuned.translators.load_state_dict(translators.state_dict())
tuned.eval()
with torch.no_grad():
    translator_gap = max((a - b).abs().max() for a, b in zip(translators.parameters(), package_tuned.parameters()))
    kl_tuned = kl_to_final(tuned_lens_logits(model, eval_stack, translators), eval_final)
print(f"your training: {train_seconds:.1f} s CPU; loss {losses[0]:.2f} at the first step, {losses[-1]:.2f} at the last")
print(f"largest difference from the package's translators: {translator_gap:.1e}")
print(f"largest difference between the loss curves: {max(abs(a - b) for a, b in zip(losses, package_losses)):.1e}")
claim("ch02.train_seconds", train_seconds)
claim("ch02.loss_first", losses[0])
claim("ch02.loss_last", losses[-1])
plot.line(
    {"your loop": torch.tensor(losses), "lens.train_tuned_lens": torch.tensor(package_losses)},
    title="Tuned-lens training loss (sum over layers of KL(final ‖ lens)), per step",
    xlabel="step",
    ylabel="loss (nats)",
)

# %% [markdown]
# The two curves lie on top of each other. The loss falls from {{claim:ch02.loss_first=20.6}} nats (the logit lens,
# summed over the four layers) to {{claim:ch02.loss_last=3.6}}, and the whole run took {{claim:ch02.train_seconds=0.5–30}} CPU seconds on one
# thread.
#
# Why match a reference step for step, rather than "the loss went down"? Because the usual
# training-loop bugs make the loss go down too. We tried three on this model and these
# settings: a forgotten `zero_grad` (gradients pile up), a generator re-seeded every step (the
# same 512 positions every time) and the KL the wrong way round. Each one lowered its loss; the
# re-seeded loop even ended with a *lower* training loss than the right one — it had learnt one
# minibatch by heart — and a worse KL on held-out text at every layer. Only a fixed protocol
# makes such bugs visible.

# %%
print("mean KL to the final output on held-out text (nats)")
print("   layer        " + "  ".join(f"{l:>10}" for l in labels))
print("   logit lens   " + "  ".join(f"{v:>10.3f}" for v in kl_logit))
print("   tuned lens   " + "  ".join(f"{v:>10.3f}" for v in kl_tuned))
claim("ch02.kl_output", kl_logit[-1])
claim("ch02.kl_output", kl_tuned[-1])
claim("ch02.kl_tuned_0", kl_tuned[0])
claim("ch02.kl_tuned_1", kl_tuned[1])
claim("ch02.kl_logit_1", kl_logit[1])
claim("ch02.kl_tuned_2", kl_tuned[2])
claim("ch02.kl_logit_2", kl_logit[2])
claim("ch02.kl_tuned_3", kl_tuned[3])
claim("ch02.kl_logit_3", kl_logit[3])

# %%
plot.line(
    {"logit lens": kl_logit, "tuned lens": kl_tuned},
    x=labels,
    title="KL(final ‖ lens) per layer, held-out text",
    xlabel="layer",
    ylabel="KL (nats)",
)

# %% [markdown]
# **What to see.** Both lenses are exact at the output (KL {{claim:ch02.kl_output=0.000}}). Before it, the tuned lens is
# much closer to the model at every layer: {{claim:ch02.kl_tuned_0=1.50}} nats at the embeddings, where the logit lens is
# worst, {{claim:ch02.kl_tuned_1=0.95}} vs {{claim:ch02.kl_logit_1=2.95}} after block 0, {{claim:ch02.kl_tuned_2=0.74}} vs {{claim:ch02.kl_logit_2=2.15}} after block 1, {{claim:ch02.kl_tuned_3=0.14}} vs {{claim:ch02.kl_logit_3=0.75}} after block 2. The
# biggest gain is at the embeddings, where the logit lens confidently predicts the current
# word (tied embeddings, as we saw) while the translator learns to map each word to what
# tends to follow it — a bigram model in one affine map.
#
# A caution from the tuned-lens paper: a translator can learn to *predict* the final output
# from features the layer holds for other purposes, so a tuned lens says what is *linearly
# decodable* at a layer, not what the layer "believes". The logit lens is cruder but has no
# parameters to overfit.
#
# Here is the indirect-object prompt through the tuned lens. Compare its first row with the
# logit lens's: instead of repeating each word, it guesses what follows it.

# %%
lens.lens_figure(model, prompt, lens=tuned)

# %% [markdown]
# Does the tuned lens find the answers of section 1 earlier? The fraction of prompts whose
# answer is top-1, per layer, under both lenses:

# %%
print(f"{'top-1 rate':>28} " + "  ".join(f"{l:>10}" for l in labels))
top1 = {}
for name, (texts, answers) in tasks.items():
    t_tokens, t_pos = lens.prompt_batch(model, texts)
    t_answers = model.to_tokens(answers, prepend_bos=False)[:, 0]
    t_stack, _ = lens.resid_stack(model, t_tokens)
    with torch.no_grad():
        _, ranks_tuned = answer_prob_and_rank(tuned_lens_logits(model, t_stack, tuned.translators), t_pos, t_answers)
    for which, ranks in (("logit lens", lens_results[name][1]), ("tuned lens", ranks_tuned)):
        top1[name, which] = (ranks == 0).float().mean(1)
        print(f"{name:>15}, {which}: " + "  ".join(f"{v:>10.2f}" for v in top1[name, which]))
claim("ch02.tuned_ioi_early_max", top1["indirect object", "tuned lens"][:3].max())
claim("ch02.tuned_ioi_3_pre", top1["indirect object", "tuned lens"][3])
claim("ch02.tuned_fact_0", top1["facts", "tuned lens"][0])
claim("ch02.tuned_fact_1", top1["facts", "tuned lens"][1])
claim("ch02.tuned_fact_2", top1["facts", "tuned lens"][2])
claim("ch02.tuned_fact_3", top1["facts", "tuned lens"][3])
claim("ch02.logit_fact_1", top1["facts", "logit lens"][1])
claim("ch02.logit_fact_3", top1["facts", "logit lens"][3])

# %% [markdown]
# For indirect objects, no: before `3_pre` the tuned lens is right for at most {{claim:ch02.tuned_ioi_early_max=0.025}} of the
# prompts, then {{claim:ch02.tuned_ioi_3_pre=0.985}}. The name is simply not at the last position until blocks 0–2 have
# moved it there, and no translator can decode what is not there. For facts, yes: {{claim:ch02.tuned_fact_0=0.28}}, {{claim:ch02.tuned_fact_1=0.51}},
# {{claim:ch02.tuned_fact_2=0.66}}, then {{claim:ch02.tuned_fact_3=0.99}}, where the logit lens reaches {{claim:ch02.logit_fact_1=0.10}} after block 0 and {{claim:ch02.logit_fact_3=0.845}} at `3_pre`.
# The category is linearly decodable after block 0 for half the prompts, in directions the
# unembedding does not read yet. (At `0_pre` the translator only sees the word "an" or "in": a
# good bigram guess is already right that often.)
# %% [markdown]
# ## 5. A lens explorer
#
# Type a prompt (press Enter), move the layer slider, switch lenses: the table shows the top-5
# next tokens after every input token at that layer. Try a sum ("three plus four is"), a fact
# ("Paris is in"), a repeated phrase, or an indirect-object sentence with the names swapped.
# (Widgets need a live kernel: on GitHub you will see a placeholder.)

# %%
explorer = widgets.lens_explorer(model, "three plus four is", k=5, tuned=tuned)
explorer

# %% [markdown]
# The explorer is plain Python underneath: `explorer.layer.value = 2` moves the slider and
# `explorer.table.value` is the HTML it shows — which is how its tests run without a browser.
#
# ## 6. Try it on GPT-2
#
# The same functions run on GPT-2 small, where nostalgebraist first saw the logit lens (it
# needs a network: GPT-2 is downloaded once, ~500 MB, and the cell is skipped offline). GPT-2's
# tokenizer is not word-level, so pick prompts whose answers are single tokens (" Mary").

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    from IPython.display import display

    display(lens.lens_figure(gpt2, "When Mary and John went to the store, John gave a drink to"))
    g_tokens, g_pos = lens.prompt_batch(gpt2, [p.text for p in ioi[:20]])
    _, g_cache = gpt2.run_with_cache(g_tokens)
    g_io = gpt2.to_tokens([p.answer for p in ioi[:20]], prepend_bos=False)[:, 0]
    g_s = gpt2.to_tokens([" " + p.s for p in ioi[:20]], prepend_bos=False)[:, 0]
    with torch.no_grad():
        g_attrs = direct_logit_attribution(gpt2, g_cache, g_cache.stack_head_results(), g_io, g_s, g_pos)
    g_grid = g_attrs[:-1].mean(1).reshape(gpt2.cfg.n_layers, gpt2.cfg.n_heads)
    display(
        plot.imshow(
            g_grid, title="GPT-2 small: direct logit attribution of each head (IO − S)", xlabel="head", ylabel="layer"
        )
    )
else:
    print("Offline: skipping GPT-2. Everything above ran on the bundled toy-language model.")

# %% [markdown]
# ## 7. Try it on a real model
#
# The lens works on every family digsite supports (`docs/models.md`). Here it runs on
# **Gemma 2** (Gemma Team, 2024, *Gemma 2: Improving Open Language Models at a Practical Size*), the
# model Gemma Scope's SAEs are trained on. Three things differ from GPT-2, and the package
# handles each: its RMSNorms multiply by (1 + w), not w (`model.norm_module(None)` is the model's
# own module, so calling it is right); it normalises each sublayer's output again before adding
# it (sandwich norms: `hook_attn_out` is what is added, after that norm); and it soft-caps its
# logits, `30·tanh(logit / 30)`, after the unembedding — the lens shows uncapped logits, which
# rank tokens the same way. The cell decodes every layer at each IOI prompt's last position and
# prints the layer from which the answer is the top prediction. Expect it late, in the last
# few of the 26 layers, as in GPT-2 — a hypothesis: we could not run it where the course was
# written, offline. `google/gemma-2-2b` is gated: accept its licence on the hub and log in
# (`huggingface_hub.login()`); it wants a GPU (bfloat16), or `"EleutherAI/pythia-160m"` on a CPU.

# %%
if online():
    real = load_model("google/gemma-2-2b", device=device, dtype=torch.bfloat16 if device.type == "cuda" else None)
    prompts = ioi[:8]
    r_tokens, r_pos = lens.prompt_batch(real, [p.text for p in prompts])
    r_answers = real.to_tokens([p.answer for p in prompts], prepend_bos=False)[:, 0]
    r_stack, r_logits = lens.resid_stack(real, r_tokens)
    rows = torch.arange(len(prompts))
    with torch.no_grad():  # only the last positions: Gemma's vocabulary has 256k tokens
        r_lens = lens.unembed(real, real.norm_module(None)(r_stack[:, rows, r_pos]))[:, :, None]
    r_probs, r_ranks = lens.answer_ranks(r_lens, torch.zeros_like(r_pos), r_answers)
    print(f"{real.cfg.architecture}: {real.cfg.n_layers} layers, logit soft cap {real.cfg.output_logits_soft_cap}")
    print("first layer from which the answer stays top-1, per prompt:", lens.first_top1_layer(r_ranks).tolist())
    from IPython.display import display

    display(lens.lens_figure(real, prompts[0].text))
else:
    print("Offline: skipping the real model (load_model needs the hub). Everything above ran on the bundled model.")

# %% [markdown]
# On GPT-2 the head attributions do not sum to the whole logit difference — we passed only the
# heads, not the embeddings, MLPs and biases. Look for the heads Wang et al. call *name movers*
# (9.9, 9.6, 10.0) among the positive ones, and for their *negative* name movers (10.7, 11.10).
# If you compare with a TransformerLens notebook, remember that our heads keep their value
# biases.

# %% [markdown]
# ## 8. Going further: attribution through a path
#
# Direct logit attribution gave every head the credit of its *direct* path to the logits. But
# a head's output is built from what it read: its values are a linear function of the stream
# entering its block — once its attention pattern and its block's ln1 scale are held at the
# values the model used, just as we froze the final LayerNorm's scale. So a head's direct
# credit splits further, over the parts of the stream *it* read and the source positions it
# read them from. Elhage et al. (2021) write a model as a sum of such paths; here we take the
# path "part → the head's values → the head's output → the logits" and do its bookkeeping by
# hand, with every LayerNorm in it frozen. Our subject: L3H2, the head with the largest direct
# credit in 2.6.
#
# ## Exercise 2.10 — one head's credit, traced back through its values
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵⚪⚪ · about 40 minutes · optional
#
# Take the parts of the stream entering the head's block (for block `l`, the first
# `2 + l·(n_heads + 2)` rows of your `decompose_by_head`: everything written before the block)
# and follow each one, at each source position, through ln1 with its cached scale, the head's
# values, its attention weights from the prompt's last position, its output matrix, the final
# LayerNorm with its cached scale, and the logit-difference direction. What no part explains
# — ln1's bias and the value bias, carried along the same path — is the last row (the model
# has no `b_V` property: hint 2 shows where the cache holds it). Nothing
# here needs a forward pass: the cache has every scale and pattern. The rows must add up to the
# head's row of your 2.6 attributions; the check also compares every entry with the reference,
# because a split whose errors cancel can add up too.


# %%
def head_path_attribution(
    model,
    cache,
    parts: torch.Tensor,
    layer: int,
    head: int,
    correct: torch.Tensor,
    wrong: torch.Tensor,
    final_pos: torch.Tensor,
) -> torch.Tensor:
    """One head's direct contribution to logit[correct] - logit[wrong], split by what its values read.

    parts: (component, batch, pos, d_model), summing to blocks.{layer}.hook_resid_pre, the stream
    the head reads. cache: holds blocks.{layer}.ln1.hook_scale and .ln1.hook_out,
    blocks.{layer}.attn.hook_v and .attn.hook_pattern, and ln_final.hook_scale.
    correct, wrong: (batch,) token ids; final_pos: (batch,) each prompt's last real position.
    Returns (component + 1, batch, pos): entry [c, b, s] is what part c at source position s adds
    to head `head`'s output at final_pos[b], read through the final LayerNorm and the unembedding
    as a logit difference, with the head's attention pattern, ln1's scale and ln_final's scale
    frozen at their cached values. Row `component` (the last) is the input-independent term: what
    ln1's bias and the head's value bias add along the same path. Invariants: the entries for
    s > final_pos[b] are 0; summed over rows and positions, column b equals the head's row of
    direct_logit_attribution(model, cache, decompose_by_head(cache, model), correct, wrong,
    final_pos); linear in parts; swapping correct and wrong negates it.
    """
    # BEGIN SOLUTION
    batch = torch.arange(parts.shape[1], device=parts.device)
    ln1 = model.norm_module(layer)
    W_V, W_O = model.W_V[layer, head], model.W_O[layer, head]  # (d_model, d_head), (d_head, d_model)
    normed = (parts - parts.mean(-1, keepdim=True)) / cache[f"blocks.{layer}.ln1.hook_scale"] * ln1.weight
    # the constant's value at each source: hook_v = ln1_out @ W_V + b_V, and ln1_out = (its linear part) + ln1.bias
    const_v = (
        cache[f"blocks.{layer}.attn.hook_v"][:, :, head] - (cache[f"blocks.{layer}.ln1.hook_out"] - ln1.bias) @ W_V
    )
    values = torch.cat([normed @ W_V, const_v[None]])  # (component + 1, batch, pos, d_head)
    weights = cache[f"blocks.{layer}.attn.hook_pattern"][batch, head, final_pos]  # (batch, pos): from final_pos
    out = (values * weights[..., None]) @ W_O  # (component + 1, batch, pos, d_model)
    scale = cache["ln_final.hook_scale"][batch, final_pos]  # (batch, 1)
    normed_out = (out - out.mean(-1, keepdim=True)) / scale[:, None] * model.norm_module(None).weight
    direction = (model.W_U[:, correct] - model.W_U[:, wrong]).T  # (batch, d_model)
    return (normed_out * direction[:, None]).sum(-1)
    # END SOLUTION


ch02.check_head_path_attribution(head_path_attribution)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# With the pattern and the scales frozen, the path is a chain of linear maps, and you apply it
# to each part *without* summing over source positions: ln1 (centre, divide by
# `cache[f"blocks.{layer}.ln1.hook_scale"]`, times ln1's weight; its bias is a constant), the
# values `@ model.W_V[layer, head]` (plus the value bias, another constant), a weight per
# source position from the pattern's row at the query, `pattern[b, head, final_pos[b], :]`,
# then `@ model.W_O[layer, head]`, then the final LayerNorm exactly as in 2.4 but at the query
# position, then the direction of 2.6.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# The value bias is not one of the model's weight properties, but the cache holds it
# implicitly: `cache[f"blocks.{layer}.attn.hook_v"][:, :, head]` is ln1's output `@ W_V` plus
# `b_V`, and ln1's output is its linear part plus `ln1.bias`. So the constant's value vector at
# each source position is `hook_v[:, :, head] − (ln1.hook_out − ln1.bias) @ W_V` (batch, pos,
# d_head): stack it under the parts' values as one more row. Then multiply by
# `pattern[batch, head, final_pos][..., None]`, `@ W_O`, centre over d_model, divide by
# `cache["ln_final.hook_scale"][batch, final_pos][:, None]` (one scale per prompt), times the final
# LayerNorm's weight, and dot with `direction[:, None]` over the last dimension.
# </details>
#
# Now on the 200 held-out indirect-object prompts, for L3H2. The parts are everything written
# before block 3; we cache the few extra names the path needs.

# %%
path_layer, path_head = 3, 2
n_before = 2 + path_layer * (model.cfg.n_heads + 2)
_, path_cache = model.run_with_cache(
    task_tokens,
    names_filter=lambda name: (
        name.endswith(("embed", "hook_z", "mlp_out", "ln_final.hook_scale"))
        or name
        in (
            f"blocks.{path_layer}.ln1.hook_scale",
            f"blocks.{path_layer}.ln1.hook_out",
            f"blocks.{path_layer}.attn.hook_v",
            f"blocks.{path_layer}.attn.hook_pattern",
        )
    ),
)
with torch.no_grad():
    path_parts = decompose_by_head(path_cache, model)
    paths = head_path_attribution(
        model, path_cache, path_parts[:n_before], path_layer, path_head, io_ids, s_ids, final_pos
    )
head_row = head_labels.index(f"L{path_layer}H{path_head}")
path_labels = head_labels[:n_before] + ["constant"]
by_part = paths.sum(-1).mean(1)  # (component + 1,): mean over prompts, summed over source positions
io_pos = (task_tokens == io_ids[:, None]).float().argmax(1)  # the first mention of the indirect object
s_pos = (task_tokens == s_ids[:, None]).float().argmax(1)  # the first mention of the subject
mlp0 = path_labels.index("L0 MLP")
print(
    f"L{path_layer}H{path_head}: direct attribution {attrs[head_row].mean():+.3f}, sum of its paths {paths.sum((0, 2)).mean():+.3f}"
)
print(
    f"largest |sum of paths - direct attribution| over prompts: {(paths.sum((0, 2)) - attrs[head_row]).abs().max():.1e}"
)
print(
    "largest paths (summed over positions):",
    ", ".join(f"{path_labels[i]} {by_part[i]:+.2f}" for i in by_part.abs().argsort(descending=True)[:5]),
)
print(
    f"L0 MLP read at the indirect object's position: {paths[mlp0, batch, io_pos].mean():+.2f}; "
    f"at the subject's first position: {paths[mlp0, batch, s_pos].mean():+.2f}"
)
claim("ch02.path_sum_error", (paths.sum((0, 2)) - attrs[head_row]).abs().max())
claim("ch02.path_mlp0", by_part[mlp0])
claim("ch02.path_embed", by_part[0])
claim("ch02.path_mlp0_io", paths[mlp0, batch, io_pos].mean())
claim("ch02.path_mlp0_s", paths[mlp0, batch, s_pos].mean())
claim(
    "ch02.path_attn_io",
    path_cache[f"blocks.{path_layer}.attn.hook_pattern"][batch, path_head, final_pos, io_pos].mean(),
)
go.Figure(go.Bar(x=path_labels, y=by_part.tolist())).update_layout(
    title=f"Where L{path_layer}H{path_head}'s direct credit comes from: mean over 200 prompts",
    xaxis_title=f"part of the stream entering block {path_layer}",
    yaxis_title="contribution to logit(IO) − logit(S)",
)

# %% [markdown]
# And for our one prompt, by part and source position (rows: the parts; columns: the position
# the head read them from):

# %%
io_id, s_id = (model.to_tokens(w, prepend_bos=False)[0, :1] for w in ("Mary", "John"))
with torch.no_grad():
    one = head_path_attribution(
        model,
        cache,
        decompose_by_head(cache, model)[:n_before],
        path_layer,
        path_head,
        io_id,
        s_id,
        torch.tensor([tokens.shape[1] - 1], device=device),
    )
plot.imshow(
    one[:, 0],
    x=[f"{i}: {t}" for i, t in enumerate(model.to_str_tokens(prompt))],
    y=path_labels,
    title=f"L{path_layer}H{path_head}'s credit by part and source position: {prompt!r}",
    xlabel="source position",
    ylabel="part",
)

# %% [markdown]
# **What to see.** The paths add up to L3H2's direct attribution (the largest gap over the
# prompts is {{claim:ch02.path_sum_error=0.0000}} to four decimals). Almost all of it comes through **block 0's MLP**
# (on average {{claim:ch02.path_mlp0=0.92}}, in logits), and almost none from the token embedding itself
# ({{claim:ch02.path_embed=-0.03}}), although the name's embedding is right there in the stream. Split by position, block 0's
# MLP read at the indirect object's position adds {{claim:ch02.path_mlp0_io=1.51}}, and read at the subject's first
# position adds {{claim:ch02.path_mlp0_s=-0.53}}: the head attends to the indirect object (weight {{claim:ch02.path_attn_io=0.38}} on
# average) and copies what block 0's MLP wrote there, and the part of its attention that lands
# on the subject works against the answer.
#
# A hypothesis, not a finding: for this head, block 0's MLP acts as part of the *token
# embedding* — the name is readable through the head's OV circuit only after that MLP has
# rewritten it. What the bookkeeping cannot tell you is whether anything *causes* anything:
# every path here is computed with the patterns and scales frozen, so a part that changed the
# pattern, or the scale, gets no credit for it. Chapter 3's patching asks the causal question.

# %% [markdown]
# ## Summary
#
# - The logit lens decodes the residual stream after every layer with the model's own final
#   LayerNorm and unembedding; the last layer is the model's output.
# - For a whole stream, the LayerNorm recomputes its scale; for parts of one stream, use the
#   cached scale, and the LayerNorm becomes linear: attributions then add up exactly.
# - Direct logit attribution splits a logit difference over embeddings, heads, MLPs and a
#   constant term. TransformerLens folds and centres weights: its single-logit numbers and its
#   per-head numbers (value biases) differ from ours; logit differences do not.
# - In the toy model, the MLPs of the last two blocks get most of the direct credit for the
#   indirect object; the heads that fetch the name act indirectly.
# - The logit lens is poor in early layers; an affine translator per layer (the tuned lens)
#   brings the KL to the final output down a long way, at the price of parameters to trust.
#   Its training loop is a few lines, but every choice in it (start, minibatches, loss) shows
#   up in the result.
# - With attention patterns and LayerNorm scales frozen, a head's direct credit splits exactly
#   over the parts and positions its values read: L3H2 reads the indirect object through what
#   block 0's MLP wrote at the name.
#
# Next, chapter 3 asks which of these parts *cause* the behaviour, with activation patching.
