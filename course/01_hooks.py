# %% [markdown]
# # Chapter 1 — Hooks, the residual stream and the first circuits
#
# A transformer is a stack of parts that all read from and write to one shared vector per
# token. In this chapter you learn to grab those parts: read any intermediate activation,
# replace it, and use that to find — and break — the first circuits people ever understood
# in a transformer: **previous-token heads** and **induction heads**.
#
# **Goals**
# - Picture the residual stream: embed → blocks that add into it → unembed.
# - Write PyTorch forward hooks by hand on a Hugging Face model: one that records, one that
#   replaces. Then use `digsite`'s `run_with_cache` / `run_with_hooks`, the tidy version.
# - Compute an attention pattern from queries and keys, and look at patterns with circuitsvis.
# - Write detectors for previous-token and induction heads and find them in a trained model.
# - Ablate a head and watch exactly one ability disappear.
# - See how K-composition wires the two heads into one circuit.
# - Decode what the position embeddings learned.
#
# **Prerequisites:** chapter 0; PyTorch tensors, indexing and `einsum`; what attention does
# (queries, keys, values, softmax) at the level of a blog post.
#
# **Time:** about 2½ hours.
#
# **Readings** (skim before, reread after):
# - Elhage et al., [*A Mathematical Framework for Transformer Circuits*](https://transformer-circuits.pub/2021/framework/index.html) (2021) —
#   the residual stream, QK and OV circuits, composition, induction heads in 2-layer models.
# - Olsson et al., [*In-context Learning and Induction Heads*](https://transformer-circuits.pub/2022/in-context-learning-and-induction-heads/index.html) (2022) —
#   induction heads in large models, and the phase change when they form.
# - PyTorch, [`Module.register_forward_hook`](https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_forward_hook) —
#   the one mechanism underneath every tool in this course.

# %%
import inspect
from functools import partial

import torch

from digsite import induction, load_model, plot, widgets
from digsite.checks import ch01
from digsite.claims import claim
from digsite.hooks import Hook, HookedModel
from digsite.notebook import online, setup
from digsite.organisms.data import repeated_tokens

device = setup(seed=0)
print("Running on", device)

# %% [markdown]
# ## 1. The residual stream
#
# Every token gets one vector of `d_model` numbers, the **residual stream**. The embedding
# writes the first value into it; then each block *reads* the stream (through a LayerNorm),
# computes something, and *adds* its result back. Nothing is ever overwritten: the stream is
# the sum of everything written so far, a shared memory every later part can read. At the end
# the final LayerNorm and the unembedding `W_U` turn it into logits.
#
# ```
#  logits = ln_final(x) @ W_U                    ← ln_final.hook_out
#    ▲
#    │  x  (batch, pos, d_model)                   ← blocks.1.hook_resid_post
#    ├──(+)◄── MLP(ln2(x))                         ← blocks.1.hook_mlp_out
#    ├──(+)◄── attention(ln1(x)): heads 0..H-1     ← blocks.1.hook_attn_out, attn.hook_pattern, hook_z
#    │                                             ← blocks.1.hook_resid_pre = blocks.0.hook_resid_post
#    ├──(+)◄── MLP(ln2(x))                         ← blocks.0.hook_mlp_out
#    ├──(+)◄── attention(ln1(x))                   ← blocks.0.hook_attn_out
#    │                                             ← blocks.0.hook_resid_pre
#  x = W_E[token] + W_pos[position]                ← hook_embed, hook_pos_embed
# ```
#
# The names on the right are **hook points**: places where we can read or change an
# activation. They follow TransformerLens's vocabulary, so what you learn here carries over:
# `ln1.hook_normalized` is the norm's value *before* its weight and bias, as there; we add
# `ln1.hook_out` for the norm's output after them, what the attention actually reads.
# Let us load the toy-language organism (4 layers, GPT-2 architecture, a word-level vocabulary)
# and look at its names.

# %%
toy = load_model("toylang", device=device)
print(toy)
print(toy.cfg)
print(len(toy.hook_names), "hook points, block 0's:")
print([name for name in toy.hook_names if name.startswith("blocks.0.")])

# %% [markdown]
# `toy.model` is the plain Hugging Face `GPT2LMHeadModel` underneath — nothing converted,
# nothing folded. Its blocks live in `toy.model.transformer.h`:

# %%
hf = toy.model
print(hf.transformer.h[0])

prompt = "When Mary and John went to the store, John gave a drink to"
prompt_ids = toy.to_tokens(prompt)  # (1, pos), <bos> first
print(toy.to_str_tokens(prompt_ids))
print("next word:", toy.to_string(toy(prompt_ids)[0, -1].argmax(dim=-1, keepdim=True)))

# %% [markdown]
# ## 2. PyTorch hooks from scratch
#
# Every `torch.nn.Module` lets you attach a function that runs right after its `forward`:
#
# ```python
# def fn(module, inputs, output):   # inputs: the positional args, as a tuple
#     ...                           # return None to leave the output alone,
#     return new_output             # or a value to replace it
#
# handle = module.register_forward_hook(fn)
# ...                               # every forward pass now calls fn
# handle.remove()                   # and now it doesn't
# ```
#
# That is all there is. Two things trip everyone up. A hook stays attached until you remove
# it — forget, and every later run is silently changed — so remove hooks in a `finally:`
# block, which runs even when the forward pass raises. And modules differ in what they return:
# in `transformers` 5 a GPT-2 block returns a tensor, while its attention module returns a
# tuple `(output, weights)`.
#
# ## Exercise 1.1 — a caching hook
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Record the residual stream after every block: hook each `hf_model.transformer.h[l]`, save
# its output, run the model once, remove the hooks.


# %%
def cache_residual_stream(hf_model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The residual stream after every block of a Hugging Face GPT-2.

    hf_model: a GPT2LMHeadModel; input_ids: (batch, pos). Returns (n_layers, batch, pos, d_model):
    entry l is block l's output. No hook may stay attached after the function returns.
    """
    # BEGIN SOLUTION
    outputs = []

    def save(module: torch.nn.Module, inputs: tuple, output) -> None:
        outputs.append((output[0] if isinstance(output, tuple) else output).detach())

    handles = [block.register_forward_hook(save) for block in hf_model.transformer.h]
    try:
        with torch.no_grad():
            hf_model(input_ids)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(outputs)
    # END SOLUTION


ch01.check_cache_residual_stream(cache_residual_stream)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Make a list, and a hook `def save(module, inputs, output): outputs.append(output.detach())`.
# Register it on every block, keep the handles, run `hf_model(input_ids)` inside
# `with torch.no_grad():`, and remove the handles in a `finally:` block. The blocks run in
# order, so the list is in layer order: `torch.stack` it.
# </details>
#
# Your hook sees the same residual stream `digsite` calls `blocks.{l}.hook_resid_post`. And
# why not `output_hidden_states=True`? Its last entry has the final LayerNorm applied: it is
# not the stream. Here is the norm of the stream at each position after each block. You should
# see it stay at {{claim:ch01.norm_first_blocks=8–13}} through the first three blocks. The last block
# grows it very unevenly: at `<bos>` and at the frequent words `When`, `and`, `the` and `a` it
# jumps to {{claim:ch01.norm_big_tokens=46–70}}, while at the last position, where the model predicts the
# answer, it barely moves ({{claim:ch01.norm_predicting_before=13.0}} → {{claim:ch01.norm_predicting_after=14.0}}). So the big
# vectors are not where the confident prediction is made. Very large norms at the first token
# and at frequent words are common in trained transformers (Sun et al., *Massive Activations in
# Large Language Models*, 2024); this figure shows *where* they are, not what they are for.

# %%
resid = cache_residual_stream(hf, prompt_ids)  # (n_layers, 1, pos, d_model)
norms = resid[:, 0].norm(dim=-1)  # (n_layers, pos)
claim("ch01.norm_first_blocks", norms[:-1].min())
claim("ch01.norm_first_blocks", norms[:-1].max())
big = [i for i, t in enumerate(toy.to_str_tokens(prompt_ids)) if t in ("<bos>", "When", "and", "the", "a")]
claim("ch01.norm_big_tokens", norms[-1, big].min())
claim("ch01.norm_big_tokens", norms[-1, big].max())
claim("ch01.norm_predicting_before", norms[-2, -1])
claim("ch01.norm_predicting_after", norms[-1, -1])
plot.imshow(
    norms,
    x=toy.to_str_tokens(prompt_ids),
    y=[f"after block {l}" for l in range(toy.cfg.n_layers)],
    title="Norm of the residual stream",
    diverging=False,
)

# %% [markdown]
# ## Exercise 1.2 — a hook that replaces an output
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# A hook that *returns* a tensor replaces the module's output. Zero the output of one
# block's MLP (`hf_model.transformer.h[layer].mlp`) and return the logits of that run.


# %%
def logits_without_mlp(hf_model: torch.nn.Module, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
    """Logits (batch, pos, d_vocab) of a forward pass with block `layer`'s MLP output set to zero.

    The hook must be gone when the function returns.
    """

    # BEGIN SOLUTION
    def zero(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(output)

    handle = hf_model.transformer.h[layer].mlp.register_forward_hook(zero)
    try:
        with torch.no_grad():
            return hf_model(input_ids).logits
    finally:
        handle.remove()
    # END SOLUTION


ch01.check_logits_without_mlp(logits_without_mlp)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `def zero(module, inputs, output): return torch.zeros_like(output)`. Assigning
# `output = ...` inside the hook does nothing: only the *returned* value reaches the model.
# `return` inside `try:` still runs the `finally:` block.
# </details>
#
# Which MLPs does the toy model need? Zero each in turn and watch the probability of the right
# answer, on an indirect-object sentence and on a sum in words. You should see that without
# MLP 0 the model is lost on both — in GPT-2 small, too, the first MLP is often read as part of
# the embedding — while the sum also needs the later MLPs, where the answer to 3 + 4 seems to
# be looked up.

# %%
answers = {prompt: " Mary", "three plus four is": " seven"}
curves = {}
for text, answer in answers.items():
    ids = toy.to_tokens(text)
    target = toy.to_tokens(answer, prepend_bos=False)[0, 0]
    with torch.no_grad():
        p_clean = toy(ids)[0, -1].softmax(-1)[target].item()
    p_without = [
        logits_without_mlp(hf, ids, layer)[0, -1].softmax(-1)[target].item() for layer in range(toy.cfg.n_layers)
    ]
    curves[f"{text} →{answer}"] = torch.tensor(p_without)
    print(
        f"p({answer.strip()}) clean {p_clean:.3f}; with one MLP zeroed: "
        + ", ".join(f"MLP {l} {p:.3f}" for l, p in enumerate(p_without))
    )
fig = plot.line(
    curves,
    x=[f"MLP {l}" for l in range(toy.cfg.n_layers)],
    title="Probability of the right answer with one MLP zeroed",
    xlabel="zeroed",
    ylabel="probability",
)
fig.update_traces(mode="lines+markers")

# %% [markdown]
# ## The tidy version: `run_with_cache` and `run_with_hooks`
#
# You just wrote the heart of every interpretability library. `digsite`'s `HookedModel` does
# the same with names instead of module paths, and a few conveniences: it removes its hooks
# with a context manager (also after an error), reaches activations that are not a module's
# output (each head's `q`, `k`, `pattern`, `z`), and checks the shape of replacements.
#
# - `logits, cache = model.run_with_cache(tokens, names_filter=...)`: record activations;
#   `cache["blocks.0.hook_resid_post"]`, or the shorthand `cache["resid_post", 0]`.
# - `model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])`: `fn(activation, hook)` may return
#   a replacement; `hook.name` says where it is.
# - `with model.hooks(fwd_hooks=[...]):` keeps hooks on for a block of code.
#
# Here is `run_with_cache` — a hook that saves, exactly like yours:

# %%
print(inspect.getsource(HookedModel.run_with_cache))

# %%
_, cache = toy.run_with_cache(prompt_ids, names_filter=lambda name: name.endswith("hook_resid_post"))
ours = torch.stack([cache["resid_post", layer] for layer in range(toy.cfg.n_layers)])
print("same as your hooks:", torch.allclose(ours, resid, atol=1e-5))

zeroed = toy.run_with_hooks(prompt_ids, fwd_hooks=[("blocks.1.hook_mlp_out", lambda out, hook: torch.zeros_like(out))])
print("same as your MLP ablation:", torch.allclose(zeroed, logits_without_mlp(hf, prompt_ids, 1), atol=1e-5))

# %% [markdown]
# ## 3. Attention patterns
#
# From here on we use the **induction organism**: a 2-layer, 4-heads-per-layer GPT-2 trained
# on a mix of toy-language text and sequences of random words in which stretches repeat. The
# one way to predict a random word is to notice the stretch is repeating — exactly what
# induction heads do. Our test data is `<bos>`, a random segment of 20 words, then the same
# segment again.

# %%
model = load_model("induction", device=device)
print(model)

SEG_LEN = 20
tokens = repeated_tokens(batch=64, seg_len=SEG_LEN, seed=0).to(device)  # (64, 1 + 2 * SEG_LEN)
print(" ".join(model.to_str_tokens(tokens[0])))
logits, cache = model.run_with_cache(tokens)

# %% [markdown]
# ## Exercise 1.3 — an attention pattern from queries and keys
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Head h at query position i scores every key position j with `q[i] · k[j] / sqrt(d_head)`,
# sets the scores of future positions (j > i) to minus infinity — a language model must not
# peek — and takes a softmax over j. The pattern's row i says where token i looks.


# %%
def attention_pattern(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal attention pattern from queries and keys.

    q, k: (batch, pos, head, d_head). Returns (batch, head, q_pos, k_pos): softmax over k_pos of
    q·k / sqrt(d_head), with every future key (k_pos > q_pos) given probability 0.
    """
    # BEGIN SOLUTION
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    n = q.shape[1]
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    # END SOLUTION


ch01.check_attention_pattern(attention_pattern)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `torch.einsum("bqhd,bkhd->bhqk", q, k)` gives the scores in the right layout. The future is
# the strict upper triangle: `torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)`. Fill it
# with `float("-inf")` (`masked_fill`) *before* the softmax, over the last dimension.
# </details>
#
# Your pattern should match the one the model computed (GPT-2 divides by `sqrt(d_head)` too):

# %%
for layer in range(model.cfg.n_layers):
    mine = attention_pattern(cache["q", layer], cache["k", layer])
    print(f"layer {layer}: matches the cached pattern: {torch.allclose(mine, cache['pattern', layer], atol=1e-5)}")

# %% [markdown]
# Now look. circuitsvis draws one small heatmap per head (rows: the token attending,
# columns: the token attended to); hover over a token to see where it looks. Look at layer 0
# for a head whose pattern is a stripe just below the diagonal, and at layer 1 for heads
# whose stripe jumps back by `SEG_LEN - 1` in the second half. The figures carry their own
# JavaScript, so they render offline.

# %%
str_tokens = model.to_str_tokens(tokens[0])
plot.attention_heads(cache["pattern", 0][0], str_tokens, [f"L0H{h}" for h in range(model.cfg.n_heads)])

# %%
plot.attention_heads(cache["pattern", 1][0], str_tokens, [f"L1H{h}" for h in range(model.cfg.n_heads)])

# %% [markdown]
# ## 4. Previous-token and induction heads
#
# An induction head completes patterns: having seen `... A B ... A`, it predicts `B`. It needs
# two steps, in two layers:
#
# 1. a **previous-token head** (layer 0) copies each token's predecessor into its position:
#    the stream at `B` now also says "I come after `A`";
# 2. the **induction head** (layer 1), sitting at the second `A`, looks for a position whose
#    *predecessor* was `A` — that is `B` — attends to it and copies `B` into the prediction.
#
# First, the evidence that the model does this: its loss on each position. The first segment
# is random, so the model can only guess (about `log(d_vocab)`); in the second it can copy.
#
# ## Exercise 1.4 — per-token loss
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 5 minutes


# %%
def per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at each position.

    logits: (batch, pos, d_vocab); tokens: (batch, pos). Returns (batch, pos - 1): entry t is
    -log p(tokens[:, t + 1]) under the prediction made at position t.
    """
    # BEGIN SOLUTION
    log_probs = logits[:, :-1].float().log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    # END SOLUTION


ch01.check_per_token_loss(per_token_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The prediction at position t is for token t + 1: pair `logits[:, :-1]` with `tokens[:, 1:]`.
# `log_softmax`, then `gather(-1, tokens[:, 1:, None])` picks each target's log-probability.
# </details>
#
# You should see a cliff: over the first segment the loss is that of guessing uniformly among
# the words, over the second it drops to a small fraction of that: the model copies.

# %%
loss = per_token_loss(logits, tokens)  # (batch, 2 * SEG_LEN)
first, second = loss[:, 1:SEG_LEN].mean().item(), loss[:, SEG_LEN + 1 :].mean().item()
print(
    f"mean loss: first repeat {first:.2f}, second repeat {second:.2f}  (log d_vocab = {torch.tensor(model.cfg.d_vocab).log():.2f})"
)
fig = plot.line(
    loss.mean(0),
    x=list(range(1, 2 * SEG_LEN + 1)),
    title="Loss on repeated random words",
    xlabel="position of the predicted token",
    ylabel="loss (nats)",
)
fig.add_vline(x=SEG_LEN + 0.5, line_dash="dot", annotation_text="repeat starts")

# %% [markdown]
# Two predictions are left out of the means: the very first word, predicted from `<bos>`
# alone, and the first word of the second repeat — nothing announces that a repeat is about to
# start, so it is a pure guess too. Find its spike in the plot.
#
# ## Exercise 1.5 — a previous-token detector
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Score each head by its mean attention from every position to the one just before it.


# %%
def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention to the previous token.

    pattern: (batch, head, q_pos, k_pos). Returns (head,): the mean over the batch and over query
    positions q >= 1 of pattern[:, :, q, q - 1].
    """
    # BEGIN SOLUTION
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))
    # END SOLUTION


ch01.check_previous_token_score(previous_token_score)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The entries `[q, q - 1]` form the diagonal just *below* the main one:
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)` has shape (batch, head, pos - 1).
# </details>
#
# ## Exercise 1.6 — an induction detector
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 15 minutes
#
# On `[<bos>, segment, segment]`, the first repeat fills positions `1 … SEG_LEN` and the second
# `SEG_LEN + 1 … 2·SEG_LEN`. A query in the second repeat at position q holds the same token as
# position q − SEG_LEN. An induction head attends to the token *after* that one.


# %%
def induction_score(pattern: torch.Tensor, seg_len: int) -> torch.Tensor:
    """Mean attention from the second repeat to the token after the previous occurrence.

    pattern: (batch, head, q_pos, k_pos) on [<bos>, segment, segment], segment of length seg_len.
    Returns (head,): the mean of pattern[:, :, q, q - seg_len + 1] over the batch and over every
    query q of the second repeat (q = seg_len + 1, ..., 2 * seg_len).
    """
    # BEGIN SOLUTION
    q = torch.arange(seg_len + 1, 2 * seg_len + 1, device=pattern.device)
    return pattern[:, :, q, q - seg_len + 1].mean(dim=(0, -1))
    # END SOLUTION


ch01.check_induction_score(induction_score)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Build the query positions `q = torch.arange(seg_len + 1, 2 * seg_len + 1)`; then
# `pattern[:, :, q, q - seg_len + 1]` picks one entry per query (paired indexing), shape
# (batch, head, seg_len). Attending to `q - seg_len` itself would be a *duplicate-token*
# head — a different thing.
# </details>
#
# Now score every head. `induction.head_scores(model, tokens, score)` records each layer's
# pattern and applies your score to it (`partial` fixes `seg_len`). You should see one bright
# previous-token head in layer 0 and two bright induction heads in layer 1. The duplicate-token
# columns are a control: no head attends to the earlier copy of the *same* token.

# %%
prev_scores = induction.head_scores(model, tokens, previous_token_score)  # (n_layers, n_heads)
ind_scores = induction.head_scores(model, tokens, partial(induction_score, seg_len=SEG_LEN))
dup_scores = induction.head_scores(model, tokens, partial(induction.duplicate_token_score, seg_len=SEG_LEN))
heads = [f"H{h}" for h in range(model.cfg.n_heads)]
layers = [f"L{l}" for l in range(model.cfg.n_layers)]
plot.imshow(
    torch.cat([prev_scores, ind_scores, dup_scores], dim=1),
    x=[f"{kind} {h}" for kind in ("prev", "ind", "dup") for h in heads],
    y=layers,
    title="Previous-token, induction and duplicate-token scores",
    diverging=False,
    zmax=1,
    text=True,
)


# %%
def name_heads(scores: torch.Tensor, threshold: float) -> list[tuple[int, int]]:
    """(layer, head) of every head scoring above threshold, best first."""
    found = [(l, h) for l in range(scores.shape[0]) for h in range(scores.shape[1]) if scores[l, h] > threshold]
    return sorted(found, key=lambda lh: -scores[lh].item())


induction_heads = name_heads(ind_scores, 0.3)
prev_head = name_heads(prev_scores, 0.0)[0]  # the most previous-token-like head
print("previous-token scores, layer 0:", ", ".join(f"0.{h} {prev_scores[0, h]:.2f}" for h in range(model.cfg.n_heads)))
print(f"top previous-token head: {prev_head[0]}.{prev_head[1]} ({prev_scores[prev_head]:.2f})")
print("induction heads:", ", ".join(f"{l}.{h} ({ind_scores[l, h]:.2f})" for l, h in induction_heads))
claim("ch01.prev_score_0_1", 100 * prev_scores[0, 1])
claim("ch01.ind_score_1_2", 100 * ind_scores[1, 2])
claim("ch01.ind_score_1_3", 100 * ind_scores[1, 3])
claim("ch01.prev_score_0_0", prev_scores[0, 0])
claim("ch01.prev_score_0_3", prev_scores[0, 3])

# %% [markdown]
# Head 0.1 spends {{claim:ch01.prev_score_0_1=93%}} of its attention on the previous token; heads 1.2 and 1.3 spend
# {{claim:ch01.ind_score_1_2=91%}} and {{claim:ch01.ind_score_1_3=87%}} of theirs, in the second repeat, on the token after the earlier
# occurrence. Heads 0.0 and 0.3 look partly at the previous token too ({{claim:ch01.prev_score_0_0=0.27}}, {{claim:ch01.prev_score_0_3=0.22}}):
# real models are rarely as tidy as the diagram. Scroll back to the circuitsvis figures and find these heads by eye.
#
# Poke at it yourself: the explorer below redraws every head of the chosen layer for any
# prompt. Every word of the organism's vocabulary is one token; try a phrase repeated twice,
# or a phrase with one word changed the second time.

# %%
widgets.attention_explorer(
    model, "the red cat saw a green owl near the river , the red cat saw a green owl near the river", layer=1
)

# %% [markdown]
# ## 5. Break something specific
#
# A detector says what a head *attends to*; it does not prove the model *uses* it. For that,
# knock the head out and see what breaks. Two ways to knock out head h: **zero-ablation** sets
# its output `z` (before the output projection, at `blocks.{l}.attn.hook_z`, shape
# `(batch, pos, head, d_head)`) to zero; **mean-ablation** sets it to its average over the
# batch, removing what depends on this particular sequence but keeping the typical value the
# later layers are used to.
#
# ## Exercise 1.7 — a head-ablation hook
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes


# %%
def head_ablation_hook(z: torch.Tensor, hook: Hook, head: int, means: torch.Tensor | None = None) -> torch.Tensor:
    """A hook for blocks.{l}.attn.hook_z that knocks out one head.

    z: (batch, pos, head, d_head). Returns a copy of z with head `head` replaced by zeros, or by
    means[..., head, :] when `means` is given (shape (pos, head, d_head): the mean over the batch).
    """
    # BEGIN SOLUTION
    z = z.clone()
    z[:, :, head] = 0.0 if means is None else means[..., head, :].to(z.dtype)
    return z
    # END SOLUTION


ch01.check_head_ablation_hook(head_ablation_hook)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The head is the *third* axis: `z[:, :, head]`. `z[:, head]` would pick a position. Clone
# first, so the original activation is not changed behind the model's back.
# </details>
#
# ## Exercise 1.8 — ablate one head of the model
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Use your hook with `model.run_with_hooks` to zero-ablate head `layer.head` and return the
# per-token loss. `functools.partial(head_ablation_hook, head=head)` fixes the head argument.


# %%
def loss_with_head_ablated(model: HookedModel, tokens: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """Per-token loss (batch, pos - 1) on tokens (batch, pos) with head `head` of layer `layer` zero-ablated."""
    # BEGIN SOLUTION
    hook = partial(head_ablation_hook, head=head)
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return per_token_loss(logits, tokens)
    # END SOLUTION


ch01.check_loss_with_head_ablated(loss_with_head_ablated)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The hook name is `f"blocks.{layer}.attn.hook_z"`; pass `fwd_hooks=[(name, partial(...))]`.
# Then reuse `per_token_loss`.
# </details>
#
# Ablate each of the 8 heads in turn and measure the loss on the second repeat. You should see
# two heads stand out — and one of them is not an induction head.


# %%
def second_repeat_loss(per_token: torch.Tensor) -> float:
    """Mean loss over the predictable part of the second repeat: (batch, 2 * SEG_LEN) -> a number."""
    return per_token[:, SEG_LEN + 1 :].mean().item()


ablated = torch.tensor(
    [
        [second_repeat_loss(loss_with_head_ablated(model, tokens, l, h)) for h in range(model.cfg.n_heads)]
        for l in range(model.cfg.n_layers)
    ]
)
claim("ch01.ablate_0_1", ablated[0, 1])
claim("ch01.ablate_1_3", ablated[1, 3])
claim("ch01.ablate_1_2", ablated[1, 2])
claim("ch01.clean_second_repeat", second)
claim("ch01.ablate_0_2", ablated[0, 2])
plot.imshow(
    ablated,
    x=heads,
    y=layers,
    title=f"Second-repeat loss with one head zero-ablated (clean: {second:.2f})",
    diverging=False,
    text=True,
    colorbar="loss",
)

# %% [markdown]
# Zeroing the previous-token head 0.1 ({{claim:ch01.ablate_0_1=5.05±0.01}}) or the induction head 1.3 ({{claim:ch01.ablate_1_3=5.70}}) destroys the
# in-context ability almost completely: both halves of the circuit are necessary. But zeroing
# 1.2 costs little ({{claim:ch01.ablate_1_2=0.61}}, against {{claim:ch01.clean_second_repeat=0.25}} clean), although it attends just like 1.3.
# Attention says where a head *looks*, not how much the model relies on what it *writes*: here
# 1.3 carries the copy and 1.2 is close to redundant. Head 0.2 matters too ({{claim:ch01.ablate_0_2=2.24}}) — a
# supporting part the detectors did not flag.

# %% [markdown]
# Now ablate the induction heads together, zero and mean, then the top previous-token head,
# and compare with one head that is neither kind — a control. `induction.ablated_loss` does
# it for a list of heads. The in-context loss should rise back to the first-repeat loss; the
# control should leave it where it was.

# %%
control = next(
    (l, h)
    for l in reversed(range(model.cfg.n_layers))
    for h in range(model.cfg.n_heads)
    if (l, h) not in [*induction_heads, prev_head]
)
runs = {
    "clean": induction.ablated_loss(model, tokens),
    "induction heads, zero-ablated": induction.ablated_loss(model, tokens, induction_heads, mode="zero"),
    "induction heads, mean-ablated": induction.ablated_loss(model, tokens, induction_heads, mode="mean"),
    f"previous-token head {prev_head[0]}.{prev_head[1]}, mean-ablated": induction.ablated_loss(
        model, tokens, [prev_head], mode="mean"
    ),
    f"control head {control[0]}.{control[1]}, mean-ablated": induction.ablated_loss(
        model, tokens, [control], mode="mean"
    ),
}
for label, run in runs.items():
    print(f"{label:>40}: first repeat {run[:, 1:SEG_LEN].mean():.2f}, second repeat {second_repeat_loss(run):.2f}")
fig = plot.line(
    {label: run.mean(0) for label, run in runs.items()},
    x=list(range(1, 2 * SEG_LEN + 1)),
    title="Per-token loss with heads ablated",
    xlabel="position of the predicted token",
    ylabel="loss (nats)",
)
claim("ch01.zero_both_second", second_repeat_loss(runs["induction heads, zero-ablated"]))
claim("ch01.clean_first_repeat", runs["clean"][:, 1:SEG_LEN].mean())
claim("ch01.mean_both_second", second_repeat_loss(runs["induction heads, mean-ablated"]))
claim(
    "ch01.mean_prev_second",
    second_repeat_loss(runs[f"previous-token head {prev_head[0]}.{prev_head[1]}, mean-ablated"]),
)
claim("ch01.mean_control_second", second_repeat_loss(runs[f"control head {control[0]}.{control[1]}, mean-ablated"]))
fig.add_vline(x=SEG_LEN + 0.5, line_dash="dot")

# %% [markdown]
# Read the numbers. Zero-ablating both induction heads takes the second-repeat loss from the
# clean value to {{claim:ch01.zero_both_second=5.99}} — no better than guessing on the first repeat ({{claim:ch01.clean_first_repeat=5.92}}). Mean-ablation even
# overshoots, to {{claim:ch01.mean_both_second=6.55}}: a head's *average* output is not "nothing", and ablations are blunt
# instruments (chapter 3's activation patching sharpens them). Mean-ablating the
# previous-token head 0.1 alone does almost as much ({{claim:ch01.mean_prev_second=5.23}}), although that head never looks
# beyond the previous token: the induction heads cannot work without what it writes. The
# control head 1.0 changes nothing ({{claim:ch01.mean_control_second=0.25}}).
#
# ## 6. How K-composition builds the circuit
#
# The induction head finds `B` by its *key*: the key at `B` must say "my predecessor was `A`",
# and only the previous-token head wrote that into `B`'s stream. A later head whose keys read
# an earlier head's output is **K-composition** (Elhage et al. 2021); queries reading it is
# Q-composition, values V-composition.
#
# In row-vector convention a head reads the stream x and writes `x @ W_OV` with
# `W_OV = W_V @ W_O` (d_model × d_model); a later head scores query x_q against key x_k as
# `x_q @ W_QK @ x_kᵀ`, `W_QK = W_Q @ W_Kᵀ`. If x_k contains the earlier head's output
# `x_s @ W_OV`, the score contains `x_q @ W_QK @ W_OVᵀ @ x_sᵀ`. How much the two matrices
# line up is measured by
#
# $$\text{K-comp} = \frac{\lVert W_{OV}\, W_{QK}^\top \rVert_F}{\lVert W_{OV} \rVert_F\,\lVert W_{QK} \rVert_F}.$$
#
# ## Exercise 1.9 — the K-composition score
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 10 minutes


# %%
def k_composition_score(W_OV: torch.Tensor, W_QK: torch.Tensor) -> torch.Tensor:
    """K-composition of an earlier head into a later one.

    W_OV: (d_model, d_model), the earlier head's W_V @ W_O; W_QK: (d_model, d_model), the later
    head's W_Q @ W_K.T. Returns a 0-d tensor: ||W_OV @ W_QK.T||_F / (||W_OV||_F * ||W_QK||_F).
    """
    # BEGIN SOLUTION
    norm = torch.linalg.matrix_norm
    return norm(W_OV @ W_QK.T) / (norm(W_OV) * norm(W_QK))
    # END SOLUTION


ch01.check_k_composition_score(k_composition_score)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `torch.linalg.matrix_norm` is the Frobenius norm by default. Transpose `W_QK`, not `W_OV`:
# `W_OV @ W_QK` would be Q-composition.
# </details>
#
# Scores only mean something next to a baseline: random matrices of the same shape and rank
# already score well above zero. `model.W_Q`, `W_K`, `W_V` have shape
# `(n_layers, n_heads, d_model, d_head)` and `W_O` `(n_layers, n_heads, d_head, d_model)`. You
# should see the top previous-token head's row stand out in the induction heads' columns:
# about {{claim:ch01.kcomp_prev_to_induction=0.23±0.02}} against a random baseline of {{claim:ch01.kcomp_baseline=0.09}}. (These
# are raw weights: the LayerNorms between the heads are left out, so treat the score as a
# pointer, then confirm it with an intervention.)

# %%
with torch.no_grad():
    W_OV = model.W_V[0] @ model.W_O[0]  # (n_heads, d_model, d_model), layer 0
    W_QK = model.W_Q[1] @ model.W_K[1].transpose(-1, -2)  # (n_heads, d_model, d_model), layer 1
    k_comp = torch.tensor(
        [
            [k_composition_score(W_OV[i], W_QK[j]).item() for j in range(model.cfg.n_heads)]
            for i in range(model.cfg.n_heads)
        ]
    )
    generator = torch.Generator().manual_seed(0)
    d_model, d_head = model.cfg.d_model, model.cfg.d_head
    baseline = (
        torch.stack(
            [
                k_composition_score(
                    torch.randn(d_model, d_head, generator=generator)
                    @ torch.randn(d_head, d_model, generator=generator),
                    torch.randn(d_model, d_head, generator=generator)
                    @ torch.randn(d_head, d_model, generator=generator),
                )
                for _ in range(200)
            ]
        )
        .mean()
        .item()
    )
torch.testing.assert_close(k_comp, induction.k_composition_scores(model, 0, 1).cpu())
claim("ch01.kcomp_prev_to_induction", k_comp[1, 2])
claim("ch01.kcomp_prev_to_induction", k_comp[1, 3])
claim("ch01.kcomp_baseline", baseline)
plot.imshow(
    k_comp,
    x=[f"L1H{h}" for h in range(model.cfg.n_heads)],
    y=[f"L0H{h}" for h in range(model.cfg.n_heads)],
    title=f"K-composition, layer 0 → layer 1 (random baseline {baseline:.2f})",
    diverging=False,
    text=True,
    xlabel="reading head (keys)",
    ylabel="writing head",
)

# %% [markdown]
# The intervention: mean-ablate the top previous-token head — then all of layer 0 — and
# recompute the induction scores. If the induction heads find `B` through keys that layer 0
# wrote, their stripe should fade.

# %%
means = induction.mean_z(model, tokens)
score = partial(induction_score, seg_len=SEG_LEN)
without_prev = induction.head_scores(model, tokens, score, fwd_hooks=induction.ablation_hooks([prev_head], means))
layer_0 = [(0, h) for h in range(model.cfg.n_heads)]
without_layer_0 = induction.head_scores(model, tokens, score, fwd_hooks=induction.ablation_hooks(layer_0, means))
for l, h in induction_heads:
    print(
        f"induction head {l}.{h}: score {ind_scores[l, h]:.2f}; without head {prev_head[0]}.{prev_head[1]}: "
        f"{without_prev[l, h]:.2f}; without all of layer 0: {without_layer_0[l, h]:.2f}"
    )
    claim("ch01.ind_without_prev", without_prev[l, h])
    claim("ch01.ind_without_layer0", without_layer_0[l, h])

# %% [markdown]
# Without head 0.1 the induction scores fall from the values above to {{claim:ch01.ind_without_prev=0.1–0.3}}; without all of
# layer 0, to almost nothing ({{claim:ch01.ind_without_layer0=0–0.05}}). The induction heads find their target through keys that the
# previous-token head wrote. That is the whole circuit: 0.1 writes "my predecessor was `A`"
# into each position, and 1.2 / 1.3, sitting on the next `A`, match their query against it
# (K-composition) and copy what they find.
#
# ## 7. Decode the position tracker
#
# The previous-token head attends by *position*: "one before me". Where does it get positions
# from? GPT-2 learns a vector per position, `W_pos` (n_ctx × d_model), added to the token
# embedding. What structure did training give it?
#
# ## Exercise 1.10 — similarity of position embeddings
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪ · about 5 minutes


# %%
def positional_similarity(W_pos: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of position embeddings.

    W_pos: (n_ctx, d_model). Returns (n_ctx, n_ctx): entry [i, j] is cos(W_pos[i], W_pos[j]).
    """
    # BEGIN SOLUTION
    unit = W_pos / W_pos.norm(dim=-1, keepdim=True)
    return unit @ unit.T
    # END SOLUTION


ch01.check_positional_similarity(positional_similarity)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Divide each *row* by its norm (`norm(dim=-1, keepdim=True)`), then a matrix product with the
# transpose.
# </details>
#
# Nearby positions should look alike, and the similarity should fall off with distance: a wide
# band along the diagonal, turning negative far from it. Look closer and the band zig-zags:
# positions two apart are *more* alike ({{claim:ch01.pos_similarity_2=0.83}}) than neighbours ({{claim:ch01.pos_similarity_1=0.67}}). Part of each embedding
# alternates from one position to the next. A plausible reading: that makes "one back" look
# different from both "here" and "two back" — exactly the distinction the previous-token head
# has to draw with a single linear map of queries and keys.

# %%
with torch.no_grad():
    similarity = positional_similarity(model.W_pos)
for distance in (1, 2, 5, 10, 20, 40):
    print(f"mean similarity at distance {distance:>2}: {similarity.diagonal(distance).mean():.2f}")
claim("ch01.pos_similarity_1", similarity.diagonal(1).mean())
claim("ch01.pos_similarity_2", similarity.diagonal(2).mean())
plot.imshow(
    similarity,
    title="Cosine similarity of position embeddings (induction organism)",
    xlabel="position",
    ylabel="position",
    zmax=1,
)

# %% [markdown]
# A sharper question: how much of the position can be read back *linearly* from the residual
# stream? Fit a least-squares probe from the stream to the position index and measure R² on
# held-out sequences.


# %%
def position_probe_r2(layer_name: str) -> float:
    """R² of a linear map from the residual stream at `layer_name` to the position index (fit on half the batch)."""
    x = cache[layer_name].cpu()  # (batch, pos, d_model); lstsq is not on every accelerator
    batch, n_pos, _ = x.shape
    features = torch.cat([x, torch.ones(batch, n_pos, 1, device=x.device)], dim=-1)
    target = torch.arange(n_pos, dtype=x.dtype, device=x.device).expand(batch, n_pos)
    train, test = slice(0, batch // 2), slice(batch // 2, batch)
    weights = torch.linalg.lstsq(features[train].reshape(-1, features.shape[-1]), target[train].reshape(-1, 1)).solution
    prediction = features[test] @ weights
    residual = ((prediction.squeeze(-1) - target[test]) ** 2).sum()
    return 1 - (residual / ((target[test] - target[test].mean()) ** 2).sum()).item()


r2 = {
    name: position_probe_r2(name)
    for name in ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"]
}
for name, value in r2.items():
    print(f"{name:>26}: R² = {value:.3f}")
claim("ch01.r2_embed", r2["blocks.0.hook_resid_pre"])
claim("ch01.r2_after_0", r2["blocks.1.hook_resid_pre"])
claim("ch01.r2_after_1", r2["blocks.1.hook_resid_post"])

# %% [markdown]
# Before the first block the position is read back almost perfectly ({{claim:ch01.r2_embed=0.999}}) — it was just
# added in, as `W_pos`. Each block writes other things on top and R² slips ({{claim:ch01.r2_after_0=0.997}} after layer 0,
# {{claim:ch01.r2_after_1=0.95}} after layer 1), but position stays linearly readable throughout: every layer can find out where it
# is. (A probe says the information is *there*, not that the model *uses* it — that takes an
# intervention, as in section 5.)

# %% [markdown]
# ## 8. Try it on GPT-2
#
# Everything above works unchanged on a real model. Olsson et al. (2022) found induction heads
# in every model they studied; in GPT-2 small the usual suspects are heads 5.1, 5.5, 6.9, 7.2
# and 7.10, fed by previous-token heads such as 4.11. This cell needs a network (it downloads
# GPT-2 small, ~500 MB, once) and is skipped offline.

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    gpt2_tokens = repeated_tokens(
        batch=8, seg_len=50, seed=0, vocab_size=gpt2.cfg.d_vocab, bos_id=gpt2.tokenizer.bos_token_id, low=0
    ).to(device)
    gpt2_ind = induction.head_scores(gpt2, gpt2_tokens, partial(induction_score, seg_len=50))
    gpt2_prev = induction.head_scores(gpt2, gpt2_tokens, previous_token_score)
    print(
        "top induction heads:", ", ".join(f"{l}.{h} ({gpt2_ind[l, h]:.2f})" for l, h in name_heads(gpt2_ind, 0.3)[:6])
    )
    print(
        "top previous-token heads:",
        ", ".join(f"{l}.{h} ({gpt2_prev[l, h]:.2f})" for l, h in name_heads(gpt2_prev, 0.3)[:4]),
    )
    from IPython.display import display

    display(
        plot.imshow(gpt2_ind, title="GPT-2 small: induction scores", xlabel="head", ylabel="layer", diverging=False)
    )
else:
    print("Offline: skipping GPT-2. Everything above ran on the bundled induction organism.")

# %% [markdown]
# ## 9. Try it on a real model
#
# The hook names above mean the same thing in every family digsite supports — GPT-2, Pythia,
# Llama, Mistral, Qwen, Gemma, OLMo-2, Phi-3, GPT-J, OPT (`docs/models.md` lists what each name
# records per family). Here is the same induction sweep on **Pythia-160m** (Biderman et al., 2023,
# *Pythia: A Suite for Analyzing Large Language Models Across Training and Scaling*), a GPT-NeoX:
# rotary positions, and attention and MLP reading the same residual stream in parallel (so its
# blocks have no `hook_resid_mid`). Olsson et al. (2022) found induction heads in every model
# they looked at, so expect a few heads with scores near 1; which ones is for you to find (we
# could not run this cell where the course was written, offline). To try Gemma 2 instead, load
# `"google/gemma-2-2b"` (gated: accept its licence on the hub and log in; about 10 GB in float32,
# so on a GPU pass `dtype=torch.bfloat16`). Needs a network; skipped offline.

# %%
if online():
    real = load_model("EleutherAI/pythia-160m", device=device)
    real_tokens = repeated_tokens(
        batch=8, seg_len=50, seed=0, vocab_size=len(real.tokenizer), bos_id=real.tokenizer.bos_token_id, low=0
    ).to(device)
    real_ind = induction.head_scores(real, real_tokens, partial(induction.induction_score, seg_len=50))
    top = real_ind.flatten().argsort(descending=True)[:6].tolist()
    n_heads = real.cfg.n_heads
    print(
        f"{real.cfg.architecture}: {real.cfg.n_layers} layers x {n_heads} heads; top induction heads:",
        ", ".join(f"{i // n_heads}.{i % n_heads} ({real_ind.flatten()[i]:.2f})" for i in top),
    )
    from IPython.display import display

    display(
        plot.imshow(real_ind, title="Pythia-160m: induction scores", xlabel="head", ylabel="layer", diverging=False)
    )
else:
    print("Offline: skipping the real model (load_model needs the hub). Everything above ran on the bundled organism.")

# %% [markdown]
# ## Summary
#
# - A forward hook is a function PyTorch calls after a module's forward; returning a value
#   replaces the output. Remove hooks in `finally:`. `run_with_cache` and `run_with_hooks` are
#   that, with names.
# - Attention: scores `q·k / sqrt(d_head)`, future masked, softmax over keys.
# - In the induction organism, previous-token head 0.1 and induction heads 1.2 and 1.3 solve
#   repeated random text; ablating them takes the loss on the
#   repeat back to guessing, ablating an unrelated head does nothing. A high detector score
#   does not mean the model relies on the head: 1.2 is nearly redundant.
# - The induction heads' keys read the previous-token head's output: K-composition, confirmed
#   by ablation.
#
# Next, chapter 2 reads the residual stream *between* layers with the logit lens. To list what
# passes in your copy of this notebook: `python -m digsite.progress chapters/01_hooks.ipynb`.
