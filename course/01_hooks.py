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
# - Read the same circuit from the weights alone — OV and QK circuits as low-rank matrices,
#   Q-/K-/V-composition, a decomposition of attention scores — and check it against the
#   ablations, down to cutting a single path.
#
# **Prerequisites:** chapter 0; PyTorch tensors, indexing and `einsum`; what attention does
# (queries, keys, values, softmax) at the level of a blog post.
#
# **Time:** about 4 hours: 2½ for sections 1–7, 1½ for reading the circuit from its weights
# (exercises 1.11–1.15), plus about 35 minutes for the optional exercise 1.16.
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
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵 · about 20 minutes
#
# On `[<bos>, segment, segment]`, the first repeat fills positions `1 … SEG_LEN` and the second
# `SEG_LEN + 1 … 2·SEG_LEN`. A query in the second repeat at position q holds the same token as
# position q − SEG_LEN. An induction head attends to the token *after* that one.


# %%
def induction_score(pattern: torch.Tensor, seg_len: int) -> torch.Tensor:
    """How much each head behaves like an induction head on [<bos>, segment, segment].

    pattern: (batch, head, q_pos, k_pos), q_pos = k_pos = 2 * seg_len + 1, for sequences made of
    <bos> and one random segment of length seg_len repeated twice. Returns (head,), each in [0, 1]:
    the attention that the queries of the second repeat give to the key a perfect induction head
    would pick, averaged over the batch and over every one of those queries. A head attending to
    the earlier copy of the query's own token, or only to the previous token, scores about 0.
    """
    # BEGIN SOLUTION
    q = torch.arange(seg_len + 1, 2 * seg_len + 1, device=pattern.device)
    return pattern[:, :, q, q - seg_len + 1].mean(dim=(0, -1))
    # END SOLUTION


ch01.check_induction_score(induction_score)

# %% [markdown]
# <details><summary>Hint 1: which key?</summary>
#
# Write a small example: seg_len = 3, tokens `<bos> a b c a b c` at positions 0–6. The query at
# position 4 holds `a`; its earlier copy is at position 1, and the token after it, `b`, at
# position 2. In general: the earlier copy of the token at q is at q − seg_len, so the key is
# one after that.
# </details>
#
# <details><summary>Hint 2: the indexing</summary>
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
# `x_q @ W_QK @ x_kᵀ`, `W_QK = W_Q @ W_Kᵀ`. Both are low-rank (rank ≤ d_head). Suppose x_k
# contains the earlier head's output: how much of the later head's score can that output move?
# Write the product of matrices through which it enters, and compare its size with the sizes
# of the two matrices: a score near 1 means the earlier head writes into exactly the subspace
# the later head's keys read, near 0 that they miss each other.
#
# ## Exercise 1.9 — the K-composition score
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 15 minutes


# %%
def k_composition_score(W_OV: torch.Tensor, W_QK: torch.Tensor) -> torch.Tensor:
    """How strongly a later head's keys read what an earlier head writes (K-composition).

    W_OV: (d_model, d_model), the earlier head's W_V @ W_O (it writes x @ W_OV); W_QK:
    (d_model, d_model), the later head's W_Q @ W_K.T (it scores x_q @ W_QK @ x_k.T). Returns a
    0-d tensor in [0, 1]: the Frobenius norm of the matrix through which the earlier head's
    output reaches the later head's scores from the key side, relative to the product of the
    two matrices' own Frobenius norms. Unchanged when either matrix is rescaled.
    """
    # BEGIN SOLUTION
    norm = torch.linalg.matrix_norm
    return norm(W_OV @ W_QK.T) / (norm(W_OV) * norm(W_QK))
    # END SOLUTION


ch01.check_k_composition_score(k_composition_score)

# %% [markdown]
# <details><summary>Hint 1: the product</summary>
#
# Put `x_k = x_s @ W_OV` into the score: `x_q @ W_QK @ (x_s @ W_OV)ᵀ = x_q @ W_QK @ W_OVᵀ @ x_sᵀ`.
# The matrix in the middle, `W_QK @ W_OVᵀ`, has the same norm as its transpose `W_OV @ W_QKᵀ`.
# </details>
#
# <details><summary>Hint 2: the score</summary>
#
# $$\text{K-comp} = \frac{\lVert W_{OV}\, W_{QK}^\top \rVert_F}{\lVert W_{OV} \rVert_F\,\lVert W_{QK} \rVert_F}.$$
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
# ## 8. Reading a circuit from its weights
#
# Everything so far was *behavioural*: run the model, look at patterns, knock heads out. But a
# 2-layer attention model is a small formula, and Elhage et al. (*A Mathematical Framework for
# Transformer Circuits*, 2021) read induction heads straight off its weight matrices. Ignore the
# nonlinear parts for a moment (the softmax decides *where* a head looks; LayerNorm rescales;
# the MLP we leave out), and each head is two low-rank bilinear maps:
#
# - its **OV circuit** `W_V @ W_O` (d_model × d_model, rank ≤ d_head) says *what* it writes,
#   given what it attends to; seen from tokens to logits, the **full OV circuit**
#   `W_E @ W_V @ W_O @ W_U` (d_vocab × d_vocab) says which output tokens each attended-to token
#   promotes;
# - its **QK circuit** `W_Q @ W_Kᵀ` says *where* it looks; between positions,
#   `W_pos @ W_Q @ W_Kᵀ @ W_posᵀ` says where it looks by position alone.
#
# These products are big but thin: for GPT-2 small the full OV circuit is 50,257 × 50,257
# (10 GB in float32) and has rank 64. `digsite.factored.FactoredMatrix(A, B)` keeps `A @ B` as
# its two factors and computes the SVD, eigenvalues and norms through the small r × r core;
# `.full()` forms the matrix only when you ask. The questions of this part: do the weights say
# what the ablations said — that 0.1 is a previous-token head and 1.2 / 1.3 copy — and by how
# much do they agree?
#
# The analysis uses raw weights: the LayerNorms between the parts are left out except where an
# exercise says so, so read every number here as evidence to check against an intervention,
# not as a proof.

# %%
from digsite.factored import FactoredMatrix

with torch.no_grad():
    W_OV_all = FactoredMatrix(model.W_V, model.W_O)  # (n_layers, n_heads, d_model, d_model), inner d_head
print(W_OV_all, "— head 1.3:", W_OV_all[1, 3])
print("singular values of head 1.3's OV matrix:", [round(v, 2) for v in W_OV_all[1, 3].S[:5].tolist()], "...")

# %% [markdown]
# ## Exercise 1.11 — the full OV circuit
#
# > Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 10 minutes
#
# If a head attends to a position holding token `t`, what does it push the logits towards?
# Follow the token through the weights: embedding, the head's value and output maps, the
# unembedding. Return the product as a `FactoredMatrix`, without forming the vocab × vocab
# matrix.


# %%
def full_ov_circuit(W_E: torch.Tensor, W_V: torch.Tensor, W_O: torch.Tensor, W_U: torch.Tensor) -> FactoredMatrix:
    """The full OV circuit of one head, from the token attended to the logits it writes.

    W_E: (d_vocab, d_model); W_V: (d_model, d_head); W_O: (d_head, d_model); W_U: (d_model, d_vocab).
    Returns a FactoredMatrix of shape (d_vocab, d_vocab) whose row t is the direct effect on the
    logits of the head copying token t's embedding (LayerNorms ignored), with inner dimension
    d_head: no d_vocab x d_vocab or d_model x d_model tensor is formed.
    """
    # BEGIN SOLUTION
    return FactoredMatrix(W_E @ W_V, W_O @ W_U)
    # END SOLUTION


ch01.check_full_ov_circuit(full_ov_circuit)

# %% [markdown]
# <details><summary>Hint 1: the order</summary>
#
# Row-vector convention: a token's embedding is the row `W_E[t]`; the head writes
# `W_E[t] @ W_V @ W_O`, and the logits are that `@ W_U`. So the circuit is the product of the
# four matrices in that order.
# </details>
#
# <details><summary>Hint 2: staying thin</summary>
#
# Multiply the two outer pairs: `W_E @ W_V` is (d_vocab, d_head) and `W_O @ W_U` is
# (d_head, d_vocab). `FactoredMatrix(left, right)`.
# </details>
#
# ## Exercise 1.12 — how much does a head copy?
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪ · about 20 minutes
#
# A copying head, attending to token `t`, raises the logit of `t` itself. Two ways to measure
# that from the full OV circuit: how often a token's own logit is the largest in its row, and
# whether the circuit's eigenvalues are mostly positive (a matrix that maps many directions
# onto themselves with a positive sign has positive eigenvalues; Elhage et al. 2021 use this).
# Compute both without forming the whole matrix at once — for GPT-2 that would be 10 GB.


# %%
def copying_scores(circuit: FactoredMatrix, rows_per_step: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Two copying scores of a square full OV circuit (d_vocab, d_vocab), as 0-d float tensors.

    top: the fraction of input tokens (rows) whose own output logit (the diagonal entry) is the
    largest in their row, in [0, 1]. eig: the sum of the circuit's eigenvalues over the sum of
    their absolute values, a real number in [-1, 1]: near 1 for a copying head, near -1 for a head
    that suppresses what it attends to. Forms at most rows_per_step rows of the matrix at a time.
    """
    # BEGIN SOLUTION
    n = circuit.shape[-1]
    hits = 0
    for start in range(0, n, rows_per_step):
        rows = circuit[start : start + rows_per_step].full()  # (rows, n): only these rows are formed
        own = torch.arange(start, start + rows.shape[0], device=rows.device)
        hits += (rows.argmax(dim=-1) == own).sum().item()
    eigenvalues = circuit.eigenvalues()
    eig = eigenvalues.sum().real / eigenvalues.abs().sum()
    return torch.tensor(hits / n, device=eig.device), eig
    # END SOLUTION


ch01.check_copying_scores(copying_scores)

# %% [markdown]
# <details><summary>Hint 1: the top-1 fraction in pieces</summary>
#
# `circuit[a:b]` is a FactoredMatrix of rows a..b−1; `.full()` forms just those. Row `i` of that
# piece is token `a + i`: compare its `argmax(dim=-1)` with `torch.arange(a, b)` and count.
# </details>
#
# <details><summary>Hint 2: the eigenvalues</summary>
#
# `circuit.eigenvalues()` returns the non-zero eigenvalues (complex, from the d_head × d_head
# matrix `B @ A`). Complex eigenvalues come in conjugate pairs, so their sum is real:
# `eigenvalues.sum().real / eigenvalues.abs().sum()`.
# </details>
#
# Now every head of the model. You should see the two induction heads copy and the others not.
# Look at 1.3 against 1.2, and remember what ablating each did.

# %%
with torch.no_grad():
    circuits = {
        (l, h): full_ov_circuit(model.W_E, model.W_V[l, h], model.W_O[l, h], model.W_U)
        for l in range(model.cfg.n_layers)
        for h in range(model.cfg.n_heads)
    }
    copying = torch.tensor([[float(s) for s in copying_scores(c)] for c in circuits.values()])  # (8, 2)
    generator = torch.Generator().manual_seed(0)
    d_vocab, d_model, d_head = model.cfg.d_vocab, model.cfg.d_model, model.cfg.d_head
    random_eig = torch.stack(
        [
            copying_scores(
                FactoredMatrix(
                    torch.randn(d_vocab, d_head, generator=generator), torch.randn(d_head, d_vocab, generator=generator)
                )
            )[1]
            for _ in range(50)
        ]
    )
head_labels = [f"{l}.{h}" for l, h in circuits]
for label, (top, eig) in zip(head_labels, copying):
    print(f"head {label}: own logit on top for {top:.1%} of tokens; eigenvalue score {eig:+.2f}")
print(f"random low-rank matrices: mean absolute eigenvalue score {random_eig.abs().mean():.2f}")
claim("ch01.ov_top_1_3", 100 * copying[7, 0])
claim("ch01.ov_top_1_2", 100 * copying[6, 0])
claim("ch01.ov_eig_1_3", copying[7, 1])
claim("ch01.ov_eig_1_2", copying[6, 1])
claim("ch01.ov_top_others", 100 * copying[:6, 0].max())
claim("ch01.ov_eig_others", copying[:6, 1].max())
claim("ch01.ov_eig_random", random_eig.abs().mean())
plot.imshow(
    copying.T,
    x=head_labels,
    y=["own logit on top", "eigenvalue score"],
    title="Copying scores of each head's full OV circuit",
    xlabel="head",
    text=True,
    zmax=1,
)

# %% [markdown]
# Only the induction heads copy. Head 1.3 puts each token's own logit on top for
# {{claim:ch01.ov_top_1_3=93%}} of the vocabulary, with an eigenvalue score of
# {{claim:ch01.ov_eig_1_3=0.98}}; head 1.2 copies less cleanly ({{claim:ch01.ov_top_1_2=54%}} on top, eigenvalue score
# {{claim:ch01.ov_eig_1_2=0.97}}). No other head puts the own logit on top for more than
# {{claim:ch01.ov_top_others=0.3%}} of tokens, and their eigenvalue scores are all negative (at most
# {{claim:ch01.ov_eig_others=-0.32}}): they push *down* what they attend to, if anything. Random low-rank
# matrices score about ±{{claim:ch01.ov_eig_random=0.04}} on average (the mean absolute score of 50 draws).
#
# This agrees with the ablations of section 5 more than the attention patterns did: both
# induction heads attend alike, but 1.3's OV circuit is the cleaner copier, and 1.3 is the one
# the model cannot do without (section 5: zeroing 1.3 takes the second-repeat loss back to
# guessing, zeroing 1.2 costs little). That 1.2's copy is weaker is a plausible reason it is
# redundant — a hypothesis the weights suggest, not one they prove (1.2 could also matter less
# because of what the MLP or LayerNorm do downstream).
#
# ## Exercise 1.13 — where the previous-token head looks, by position
#
# > Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Head 0.1 attends to the previous token whatever the token is, so its QK circuit should
# prefer "one position back" from the position embeddings alone. Score every (query position,
# key position) pair through the head's QK circuit using `W_pos` only, and measure how often
# the best key a query may attend to is the one just before it.


# %%
def previous_position_fraction(W_pos: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor) -> torch.Tensor:
    """How often one head's position-only attention score picks the previous position.

    W_pos: (n_ctx, d_model); W_Q, W_K: (d_model, d_head) of one head. Returns a 0-d float tensor in
    [0, 1]: over the query positions q = 1 .. n_ctx - 1, the fraction whose highest position-only
    score (query W_pos[q], key W_pos[k], through the head's QK circuit), among the keys the causal
    mask lets it see, is at k = q - 1.
    """
    # BEGIN SOLUTION
    n_ctx = W_pos.shape[0]
    scores = FactoredMatrix(W_pos @ W_Q, W_K.T @ W_pos.T).full()  # (q, k)
    future = torch.ones(n_ctx, n_ctx, dtype=torch.bool, device=W_pos.device).triu(diagonal=1)
    best = scores.masked_fill(future, float("-inf")).argmax(dim=-1)[1:]
    return (best == torch.arange(n_ctx - 1, device=W_pos.device)).float().mean()
    # END SOLUTION


ch01.check_previous_position_fraction(previous_position_fraction)

# %% [markdown]
# <details><summary>Hint 1: the matrix</summary>
#
# Query position q carries `W_pos[q]`, so its query is `W_pos[q] @ W_Q`; key position k's key is
# `W_pos[k] @ W_K`. All pairs at once: `(W_pos @ W_Q) @ (W_pos @ W_K).T`, an (n_ctx, n_ctx)
# matrix — here small enough to form.
# </details>
#
# <details><summary>Hint 2: mask, argmax, compare</summary>
#
# Fill the strict upper triangle with `-inf` (`triu(diagonal=1)`), take `argmax(dim=-1)`, drop
# row 0 (it can only see itself) and compare rows 1.. with `torch.arange(n_ctx - 1)`.
# </details>
#
# Compare all four layer-0 heads, and look at head 0.1's positional QK circuit. You should see
# the off-by-one stripe: each row's brightest visible entry just left of the diagonal.

# %%
with torch.no_grad():
    prev_fraction = torch.stack(
        [previous_position_fraction(model.W_pos, model.W_Q[0, h], model.W_K[0, h]) for h in range(model.cfg.n_heads)]
    )
    l, h = prev_head  # 0.1, found by the detector in section 4
    pos_qk = FactoredMatrix(model.W_pos @ model.W_Q[l, h], model.W_K[l, h].T @ model.W_pos.T).full().cpu()
    n_ctx = pos_qk.shape[0]
    ln = model.norm_module(l)  # the block's ln1
    W_pos_ln = (model.W_pos - model.W_pos.mean(-1, keepdim=True)) * ln.weight  # centred, times ln1's weight
    prev_fraction_ln = previous_position_fraction(W_pos_ln, model.W_Q[l, h], model.W_K[l, h])
    pos_visible = pos_qk.masked_fill(torch.ones(n_ctx, n_ctx, dtype=torch.bool).triu(diagonal=1), float("nan"))
    best = pos_visible.nan_to_num(float("-inf")).argmax(-1)
    misses = [q for q in range(1, n_ctx) if best[q] != q - 1]
print(
    "fraction of positions whose best key is the previous one:", [f"0.{h} {f:.2f}" for h, f in enumerate(prev_fraction)]
)
print(f"head {l}.{h} misses at query positions", misses)
claim("ch01.pos_prev_fraction_0_1", prev_fraction[h])
claim("ch01.pos_prev_fraction_others", max(f for i, f in enumerate(prev_fraction) if i != h))
claim("ch01.pos_prev_fraction_ln", prev_fraction_ln)
claim("ch01.pos_first_miss_late", min(q for q in misses if q > 1))
plot.imshow(
    pos_visible - pos_visible.nanmean(-1, keepdim=True),
    title=f"Head {l}.{h}: position-only attention score (each row minus its mean)",
    xlabel="key position",
    ylabel="query position",
)

# %% [markdown]
# For head 0.1 the best visible key is the previous position for {{claim:ch01.pos_prev_fraction_0_1=0.73}} of the query
# positions ({{claim:ch01.pos_prev_fraction_ln=0.76}} if the position vectors are first centred and scaled by the LayerNorm's
# weight, as the model sees them); for the other layer-0 heads at most {{claim:ch01.pos_prev_fraction_others=0.03}}. Where does it fail?
# At position 1 (whose only earlier key is `<bos>`) and from about position {{claim:ch01.pos_first_miss_late=45}} on. Our test
# sequences have 41 tokens, so inside them the weights alone say "look one back" almost
# everywhere — the same head the previous-token detector found in section 4. Why the
# late positions differ the weights do not say; in real sequences the token embeddings add to
# the score too, so this is the positional part of the story only.
#
# ## Exercise 1.14 — where the induction head's scores come from
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵🔵 · about 35 minutes
#
# Section 6 showed K-composition from the weights and then by ablation. Now take the induction
# head's actual attention scores on our repeated sequences apart. The stream that layer 1 reads
# is a sum of pieces: token embedding, position embedding, each layer-0 head's output, layer
# 0's attention bias and its MLP. LayerNorm is not linear — but with its scale held at the value
# it had on this input (`blocks.1.ln1.hook_scale`), it is, so each piece can go through it on
# its own and the results add up. Then each query is a sum of per-piece queries, each key a sum
# of per-piece keys, and every score a sum over (query piece, key piece) pairs. What belongs to
# no piece (the LayerNorm's bias, `b_Q`, `b_K`) becomes one more "piece" of its own.
#
# This is the real thing: a decomposition that adds up exactly to what the model computed, and
# that is how you check it.


# %%
def score_decomposition(
    parts: torch.Tensor,
    scale: torch.Tensor,
    ln_weight: torch.Tensor,
    W_Q: torch.Tensor,
    W_K: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
) -> torch.Tensor:
    """One head's attention scores split by where the query and the key input come from.

    parts: (n_parts, batch, pos, d_model), pieces of the residual stream that sum to the stream the
    layer reads; scale: (batch, pos, 1), the layer's ln1 scale on that input (hook_scale); ln_weight:
    (d_model,), ln1's weight (a LayerNorm: it centres). W_Q, W_K: (d_model, d_head) of the head;
    q, k: (batch, pos, d_head), the head's actual queries and keys (hook_q, hook_k, biases included).
    Returns (n_parts + 1, n_parts + 1, batch, q_pos, k_pos): entry [i, j] is the part of the head's
    scaled score q·k / sqrt(d_head) (before the causal mask) due to part i on the query side and
    part j on the key side; index n_parts is what no part carries (the biases). Summed over the
    first two axes it equals the head's scores.
    """
    # BEGIN SOLUTION
    normed = (parts - parts.mean(dim=-1, keepdim=True)) / scale * ln_weight  # (n, batch, pos, d_model)
    q_parts, k_parts = normed @ W_Q, normed @ W_K  # (n, batch, pos, d_head)
    q_parts = torch.cat([q_parts, (q - q_parts.sum(0))[None]])
    k_parts = torch.cat([k_parts, (k - k_parts.sum(0))[None]])
    return torch.einsum("ibqd,jbkd->ijbqk", q_parts, k_parts) / W_Q.shape[-1] ** 0.5
    # END SOLUTION


ch01.check_score_decomposition(score_decomposition)

# %% [markdown]
# <details><summary>Hint 1: the plan</summary>
#
# 1. Put every part through the norm with the fixed scale: centre it over d_model (LayerNorm
#    subtracts the mean, which is linear), divide by `scale`, multiply by `ln_weight` (no bias:
#    it belongs to no part).
# 2. Project each normalised part with `W_Q` and with `W_K`: per-part queries and keys.
# 3. The leftover query is `q` minus the sum of the per-part queries (the same for keys); append
#    it as one more part.
# 4. Every pair's dot product over d_head, divided by `sqrt(d_head)`.
# </details>
#
# <details><summary>Hint 2: the one einsum</summary>
#
# With `q_parts` and `k_parts` of shape (n_parts + 1, batch, pos, d_head):
# `torch.einsum("ibqd,jbkd->ijbqk", q_parts, k_parts) / d_head ** 0.5`.
# </details>
#
# The pieces come from the cache: `cache.decompose_resid(layer=1)` gives embedding, position,
# layer 0's attention output and its MLP; `cache.stack_head_results(layer=1)` splits the
# attention output by head (the rest of it is the bias `b_O`). First check that the parts add
# up to the model's own scores. Then, at each query of the second repeat, measure how much each
# pair raises the score of the induction target (the key an induction head should pick) above
# the average of the other keys it can see.

# %%
with torch.no_grad():
    stack, stack_labels = cache.decompose_resid(layer=1, return_labels=True)  # embed, pos, attn_out, mlp_out
    head_out = cache.stack_head_results(layer=1)  # (n_heads, batch, pos, d_model)
    parts = torch.cat([stack[:2], head_out, (stack[2] - head_out.sum(0))[None], stack[3:]])
    part_labels = ["embed", "pos"] + [f"head 0.{h}" for h in range(model.cfg.n_heads)] + ["b_O 0", "MLP 0", "biases"]
    q_pos = torch.arange(SEG_LEN + 1, 2 * SEG_LEN + 1)
    visible = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()[q_pos]  # (seg_len, k)
    others = visible.clone()
    others[torch.arange(SEG_LEN), q_pos - SEG_LEN + 1] = False
    lift = {}
    for l, h in induction_heads:
        pieces = score_decomposition(
            parts,
            cache["blocks.1.ln1.hook_scale"],
            model.norm_module(1).weight,
            model.W_Q[1, h],
            model.W_K[1, h],
            cache["q", 1][:, :, h],
            cache["k", 1][:, :, h],
        ).cpu()
        torch.testing.assert_close(  # the parts add up to the model's scores (every visible key)
            pieces.sum((0, 1))[:, q_pos][:, visible], cache["attn_scores", 1][:, h, q_pos][:, visible].cpu()
        )
        rows = pieces[..., q_pos, :]  # (n+1, n+1, batch, seg_len, k)
        target = rows[..., torch.arange(SEG_LEN), q_pos - SEG_LEN + 1]  # (n+1, n+1, batch, seg_len)
        rest = (rows * others).sum(-1) / others.sum(-1)
        lift[l, h] = (target - rest).mean(dim=(-1, -2))  # (n+1, n+1)
key_side = {lh: m.sum(0) for lh, m in lift.items()}  # (n+1,): summed over query parts
query_side = {lh: m.sum(1) for lh, m in lift.items()}
for (l, h), m in lift.items():
    total = m.sum()
    print(f"head {l}.{h}: target lifted by {total:.2f} above the other keys")
    print("   key side:  ", ", ".join(f"{n} {v:+.2f}" for n, v in zip(part_labels, key_side[l, h])))
    print("   query side:", ", ".join(f"{n} {v:+.2f}" for n, v in zip(part_labels, query_side[l, h])))
prev_col = part_labels.index("head 0.1")
claim("ch01.key_share_0_1", 100 * min(key_side[lh][prev_col] / lift[lh].sum() for lh in lift))
claim("ch01.key_share_0_1", 100 * max(key_side[lh][prev_col] / lift[lh].sum() for lh in lift))
for lh in lift:
    claim("ch01.query_share_embed", 100 * query_side[lh][part_labels.index("embed")] / lift[lh].sum())
    claim("ch01.query_share_0_2", 100 * query_side[lh][part_labels.index("head 0.2")] / lift[lh].sum())
plot.imshow(
    lift[1, 3],
    x=part_labels,
    y=part_labels,
    title="Head 1.3: how much each (query part, key part) lifts the induction target's score",
    xlabel="key side: from",
    ylabel="query side: from",
    text=True,
)

# %% [markdown]
# The parts add up to the model's scores (the `assert_close` above), so nothing is hidden in a
# remainder. Read the figure by columns, then by rows. On the **key side**, head 0.1's output
# carries {{claim:ch01.key_share_0_1=60–70%}} of the lift for the two induction heads: the induction target is found because
# of what the previous-token head wrote into it. On the **query side** the lift comes mostly from
# the token embedding ({{claim:ch01.query_share_embed=30–40%}}) and from head 0.2 ({{claim:ch01.query_share_0_2=25–35%}}), with smaller shares from 0.3 and
# MLP 0: the query says which token it is, and head 0.2 seems to help say it. That is a
# finding the detectors missed and the ablation only hinted at: zeroing 0.2 did raise the
# second-repeat loss (section 5). Position contributes almost nothing to the lift: this head
# finds its target by content, not by distance.
#
# ## Exercise 1.15 — Q-, K- and V-composition for every pair of heads
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪ · about 30 minutes
#
# Exercise 1.9 scored K-composition for one pair with dense d_model × d_model matrices. A later
# head can read an earlier head's output in three places: its queries (Q-composition), its keys
# (K-composition) and its values (V-composition, the two heads acting as one longer OV circuit).
# Score all three for every (earlier head, later head) pair of two layers at once, with
# factored matrices — in GPT-2 small that is 144 pairs for each of 66 pairs of layers, each
# product 768 × 768 if formed; here the 64 × 64 cores do the work.


# %%
def composition_scores(W_OV_src: FactoredMatrix, W_QK_dst: FactoredMatrix, W_OV_dst: FactoredMatrix) -> torch.Tensor:
    """Q-, K- and V-composition of every earlier head into every later head.

    W_OV_src: (n_src, d_model, d_model), the earlier heads' OV circuits W_V @ W_O (a head writes
    x @ W_OV); W_QK_dst: (n_dst, d_model, d_model), the later heads' W_Q @ W_K.T (scores
    x_q @ W_QK @ x_k.T); W_OV_dst: (n_dst, d_model, d_model), the later heads' OV circuits.
    Returns (3, n_src, n_dst), each entry in [0, 1]: [0] Q-, [1] K-, [2] V-composition, the
    Frobenius norm of the matrix through which head i's output reaches head j's queries, keys or
    values, relative to the product of the two matrices' norms. Row [1] equals exercise 1.9's
    score for every pair. No d_model x d_model matrix is formed.
    """
    # BEGIN SOLUTION
    src = FactoredMatrix(W_OV_src.A[:, None], W_OV_src.B[:, None])  # (n_src, 1, d, d)
    qk = FactoredMatrix(W_QK_dst.A[None], W_QK_dst.B[None])  # (1, n_dst, d, d)
    ov = FactoredMatrix(W_OV_dst.A[None], W_OV_dst.B[None])
    norms = src.norm()
    return torch.stack(
        [
            (src @ qk).norm() / (norms * qk.norm()),
            (src @ qk.T).norm() / (norms * qk.norm()),
            (src @ ov).norm() / (norms * ov.norm()),
        ]
    )
    # END SOLUTION


ch01.check_composition_scores(composition_scores)

# %% [markdown]
# <details><summary>Hint 1: the three products</summary>
#
# In row-vector convention, if x carries `x_s @ W_OV_src`:
# - on the query side the score is `(x_s @ W_OV_src) @ W_QK @ x_kᵀ`: the product `W_OV_src @ W_QK`;
# - on the key side `x_q @ W_QK @ W_OV_srcᵀ @ x_sᵀ`: `W_QK @ W_OV_srcᵀ`, whose norm equals
#   that of `W_OV_src @ W_QKᵀ`;
# - on the value side the later head writes `x_s @ W_OV_src @ W_OV_dst`: `W_OV_src @ W_OV_dst`.
#
# Each score is `‖product‖_F / (‖W_OV_src‖_F ‖other‖_F)`.
# </details>
#
# <details><summary>Hint 2: every pair at once</summary>
#
# Give the factors new axes so they broadcast: `FactoredMatrix(W.A[:, None], W.B[:, None])` is
# (n_src, 1, d, d), `FactoredMatrix(W.A[None], W.B[None])` is (1, n_dst, d, d). Their product is
# (n_src, n_dst, d, d), still factored, and `.norm()` gives (n_src, n_dst) from d_head × d_head
# matrices. `.T` transposes a factored matrix.
# </details>
#
# A score is only high or low next to a baseline: random matrices of the same shapes and ranks
# already compose a little. Compute the scores for layer 0 → layer 1, the same for 50 draws
# of random factors, and compare. You should see K-composition from head 0.1 into the induction
# heads stand out, as in exercise 1.9.

# %%
with torch.no_grad():
    W_QK_all = FactoredMatrix(model.W_Q, model.W_K.transpose(-1, -2))  # (n_layers, n_heads, d_model, d_model)
    comp = composition_scores(W_OV_all[0], W_QK_all[1], W_OV_all[1]).cpu()  # (3, n_heads, n_heads)
    generator = torch.Generator().manual_seed(0)

    def random_heads(n: int) -> FactoredMatrix:
        return FactoredMatrix(
            torch.randn(n, d_model, d_head, generator=generator), torch.randn(n, d_head, d_model, generator=generator)
        )

    random_comp = torch.stack(
        [composition_scores(random_heads(4), random_heads(4), random_heads(4)) for _ in range(50)]
    )  # (50, 3, 4, 4)
    comp_baseline = random_comp.mean(dim=(0, 2, 3))  # (3,)
    comp_spread = random_comp.std(dim=(0, 2, 3))
torch.testing.assert_close(comp[1], induction.k_composition_scores(model, 0, 1).cpu())  # the package agrees
kinds = ["Q", "K", "V"]
for kind, scores, base, spread in zip(kinds, comp, comp_baseline, comp_spread):
    top = divmod(int(scores.argmax()), model.cfg.n_heads)
    print(
        f"{kind}-composition: random baseline {base:.3f} ± {spread:.3f}; "
        f"top pair 0.{top[0]} → 1.{top[1]}: {scores.max():.3f}"
    )
induction_cols = [h for _, h in induction_heads]
claim("ch01.comp_baseline", comp_baseline.mean())
claim("ch01.comp_baseline_spread", comp_spread.max())
claim("ch01.comp_k_ratio", comp[1, prev_head[1], induction_cols].min() / comp_baseline[1])
claim("ch01.comp_k_ratio", comp[1, prev_head[1], induction_cols].max() / comp_baseline[1])
top_k_source = comp[1][:, induction_cols].argmax(
    dim=0
)  # the earlier head with the most K-composition, per induction head
top_q_source = comp[0][:, induction_cols].argmax(dim=0)
print(
    "top K-composition source of each induction head:", top_k_source.tolist(), "; top Q source:", top_q_source.tolist()
)
claim("ch01.comp_q_0_2", comp[0, 2, induction_cols].min())
claim("ch01.comp_q_0_2", comp[0, 2, induction_cols].max())
claim("ch01.comp_v_max", comp[2].max())
claim("ch01.comp_v_prev", comp[2, prev_head[1], induction_cols].min())
claim("ch01.comp_v_prev", comp[2, prev_head[1], induction_cols].max())
plot.imshow(
    torch.cat(list(comp - comp_baseline[:, None, None]), dim=1),
    x=[f"{kind} → 1.{h}" for kind in kinds for h in range(model.cfg.n_heads)],
    y=[f"0.{h}" for h in range(model.cfg.n_heads)],
    title="Composition scores, layer 0 → layer 1, minus the random baseline",
    xlabel="composition into (later head)",
    ylabel="earlier head",
    text=True,
)

# %% [markdown]
# The random baseline is {{claim:ch01.comp_baseline=0.088}} for all three kinds (spread ±{{claim:ch01.comp_baseline_spread=0.003}} over the
# draws). Against it, the weights tell the circuit's story:
#
# - **K-composition**: for both induction heads the strongest source is head 0.1, at
#   {{claim:ch01.comp_k_ratio=2.5–2.7}} times the baseline — the previous-token head whose ablation broke induction in
#   section 5, and whose output the key side of exercise 1.14 reads.
# - **Q-composition**: the strongest source for both induction heads is head 0.2
#   ({{claim:ch01.comp_q_0_2=0.14–0.15}}), the head exercise 1.14 found on the query side and whose ablation
#   cost more than the detectors predicted. The weights suggest a role for it: it helps tell
#   the query which token it sits on.
# - **V-composition** from head 0.1 into the induction heads is *below* the baseline
#   ({{claim:ch01.comp_v_prev=0.03–0.06}}): what the previous-token head writes is read by the induction heads' keys, not
#   copied on by their values — as it should be, since they must copy the token at the target,
#   not its predecessor. The highest V-composition, {{claim:ch01.comp_v_max=0.14}}, is 0.0 → 1.1, a pair neither the
#   detectors nor the ablations flagged.
#
# Weights and ablations agree on the ranking: the same previous-token head tops K-composition,
# the same supporting head tops Q-composition. The weights also flag pairs that have nothing to
# do with induction (0.0 → 1.0 in Q-composition, 0.0 → 1.1 in V-composition; head 1.0 was the
# control whose ablation changed nothing): a composition score is a pointer to a pair worth
# testing, and the intervention decides — which is what the last exercise does.

# %% [markdown]
# ## Exercise 1.16 (optional) — cut one path, build it yourself
#
# > Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵⚪⚪ · about 35 minutes
#
# The weights point at one path: head 0.1 → the *keys* of layer 1. Section 5 ablated head 0.1
# everywhere, which cuts every path through it at once. Cut just one: let layer 1's keys see
# head 0.1 mean-ablated, while its queries, its values and everything else see the clean
# stream. If the story is right, cutting the key path should hurt as much as ablating the head;
# cutting the query or value path should hardly matter. This is path patching in miniature
# (chapter 3 does it in general): write it yourself, with one hook on the receiver.


# %%
def loss_with_path_ablated(
    model: HookedModel, tokens: torch.Tensor, head: tuple[int, int], dst_layer: int, side: str
) -> torch.Tensor:
    """Per-token loss (batch, pos - 1) with one path from a head into a later layer mean-ablated.

    tokens: (batch, pos). head = (layer, h) with layer < dst_layer; side is "q", "k" or "v". Every
    head of layer dst_layer computes its queries (side "q"), keys ("k") or values ("v") from a
    residual stream in which head's output is replaced by its mean over the batch (per position),
    put through dst_layer's ln1 as the model would (its scale recomputed). Every other computation,
    the other two sides of dst_layer included, sees the clean run. Leaves no hook behind.
    """
    # BEGIN SOLUTION
    layer, h = head
    resid_name = f"blocks.{dst_layer}.hook_resid_pre"
    _, clean = model.run_with_cache(tokens, names_filter=[f"blocks.{layer}.attn.hook_z", resid_name])
    with torch.no_grad():
        out = clean["z", layer][:, :, h] @ model.W_O[layer, h]  # (batch, pos, d_model)
        resid = clean[resid_name]
        ln = model.norm_module(dst_layer, "ln1")
        change = ln(resid + out.mean(0) - out) - ln(resid)  # what the ablation changes in ln1's output
        W = {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[side][dst_layer]  # (n_heads, d_model, d_head)
        delta = torch.einsum("bpm,hmd->bphd", change, W)

        def patch(act: torch.Tensor, hook: Hook) -> torch.Tensor:
            return act + delta.to(act.dtype)

        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{dst_layer}.attn.hook_{side}", patch)])
    return per_token_loss(logits, model.input_ids(tokens))
    # END SOLUTION


ch01.check_loss_with_path_ablated(loss_with_path_ablated)

# %% [markdown]
# <details><summary>Hint 1: the idea</summary>
#
# The receiver's keys are `ln1(resid) @ W_K + b_K`. Run the clean model once and cache head's
# `z` and `resid_pre` of dst_layer. Build the ablated stream: `resid` minus head's output plus its
# batch mean. The keys the receiver should use differ from the clean keys by
# `(ln1(ablated) − ln1(resid)) @ W_K` — the bias cancels, so you never need `b_K`.
# </details>
#
# <details><summary>Hint 2: the key step</summary>
#
# Head's output is `z[:, :, h] @ model.W_O[layer, h]`; `model.norm_module(dst_layer, "ln1")` is
# the norm itself (call it on a tensor). With `change` (batch, pos, d_model),
# `torch.einsum("bpm,hmd->bphd", change, model.W_K[dst_layer])` is the change of every head's
# keys, shaped like `blocks.{dst_layer}.attn.hook_k`. One hook that adds it, inside
# `model.run_with_hooks`; then `per_token_loss`.
# </details>
#
# Cut each of the three paths from head 0.1 into layer 1 and compare with the clean run and
# with ablating 0.1 everywhere. You should see the key path carry nearly all of it.

# %%
path_loss = {"clean": second_repeat_loss(runs["clean"])}
path_loss["0.1 everywhere"] = second_repeat_loss(
    runs[f"previous-token head {prev_head[0]}.{prev_head[1]}, mean-ablated"]
)
for side in ("q", "k", "v"):
    path_loss[f"0.1 → layer 1 {side}"] = second_repeat_loss(loss_with_path_ablated(model, tokens, prev_head, 1, side))
for label, value in path_loss.items():
    print(f"{label:>18}: second-repeat loss {value:.2f}")
claim("ch01.path_k", path_loss["0.1 → layer 1 k"])
claim("ch01.path_q", path_loss["0.1 → layer 1 q"])
claim("ch01.path_v", path_loss["0.1 → layer 1 v"])
fig = plot.line(
    torch.tensor(list(path_loss.values())),
    x=list(path_loss),
    title="Second-repeat loss with one path from head 0.1 cut",
    xlabel="what was mean-ablated",
    ylabel="loss (nats)",
)
fig.update_traces(mode="markers", marker_size=12)

# %% [markdown]
# Cutting only the key path takes the second-repeat loss to {{claim:ch01.path_k=5.4±0.1}}, as much as ablating head 0.1
# everywhere (section 5) — a little more, even; the query path ({{claim:ch01.path_q=0.25±0.05}}) and the value path ({{claim:ch01.path_v=0.25±0.05}}) barely move it.
# Three kinds of evidence now agree: the weights alone (exercises 1.13 and 1.15), the
# decomposition of the scores the model computed (1.14), and an intervention on one path (this
# exercise). In this model, head 0.1 matters to induction through the keys of layer 1.

# %% [markdown]
# ## 9. Try it on GPT-2
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
# ## 10. Try it on a real model
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
# - The weights tell the same story: only 1.2 and 1.3 have copying OV circuits (1.3 the cleaner,
#   the one the model cannot do without); head 0.1's positional QK circuit says "one back"; the
#   induction target's score is lifted on the key side by 0.1's output and on the query side by
#   the embedding and head 0.2; cutting only the path 0.1 → layer-1 keys breaks induction.
#   Low-rank products stay factored (`digsite.factored.FactoredMatrix`).
#
# Next, chapter 2 reads the residual stream *between* layers with the logit lens. To list what
# passes in your copy of this notebook: `python -m digsite.progress chapters/01_hooks.ipynb`.
