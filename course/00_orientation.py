# %% [markdown]
# # Chapter 0 — Orientation: how this course works
#
# Welcome to **Dig Site**, a hands-on course in mechanistic interpretability: reading the
# algorithms that trained neural networks actually run. Every chapter is a notebook of short
# exercises on real, trained transformers — small ones the course trains itself, so everything
# runs offline, on a laptop CPU, in minutes.
#
# **Goals of this chapter**
# - See the rhythm of an exercise: stub → check → hint → solution.
# - Load one of the course's model organisms and ask it for a prediction.
# - Look inside it once: an attention pattern, a plot, an explorer with a slider.
# - Know how to switch device (CPU / GPU) and model (organism / GPT-2).
#
# **Prerequisites:** Python and a little PyTorch (tensors, indexing, `softmax`).
#
# **Time:** about 20 minutes.

# %% [markdown]
# ## How an exercise works
#
# Each exercise is a function with a docstring and type hints. Its body is
# `raise NotImplementedError(...)`: replace that line with your code. Right after it comes a
# **check** call that runs your function against a reference on fresh inputs and prints
# either ✅ or ❌ with what was expected, what came back, and where they first differ.
#
# Stuck? Every exercise has a hint you can unfold, and the complete notebook lives in
# `solutions/` with the same name. Each exercise is rated for difficulty (🔴) and importance
# (🔵) out of 5, with a time budget: if you go well past it, read the hint, then the solution —
# that is how the course is meant to be used.
#
# First, the setup cell. It seeds every random number generator (so your figures match ours),
# makes plots work offline and in Colab, and picks a device: a GPU if you have one, otherwise
# the CPU. Running it twice is harmless.

# %%
import torch

from digsite import load_model, plot, widgets
from digsite.checks import ch00
from digsite.notebook import online, setup

device = setup(seed=0)
print("Running on", device)

# %% [markdown]
# To force the CPU (say, to compare timings), call `setup(device="cpu")`.
#
# ## Exercise 0.1 — a numerically stable softmax
#
# > Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪ · about 5 minutes
#
# A language model's last layer produces **logits**: one number per word in its vocabulary.
# Softmax turns them into probabilities. You will apply it hundreds of times in this course, so
# let us write it once, properly: over the last dimension, and without overflowing when logits
# are large (`torch.exp(1000.)` is `inf`).


# %%
def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension.

    x: (..., n) logits. Returns (..., n) probabilities that sum to 1 along the last dimension.
    Must not overflow for large logits.
    """
    # BEGIN SOLUTION
    shifted = x - x.max(dim=-1, keepdim=True).values
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)
    # END SOLUTION


ch00.check_softmax(softmax)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Softmax does not change if you subtract the same number from every logit. Subtract the
# maximum along the last dimension (`x.max(dim=-1, keepdim=True).values`) before `exp`.
# </details>
#
# When it works you should see ✅. Try breaking it on purpose — sum over `dim=0`, or drop the
# max subtraction — and read what the check tells you.

# %% [markdown]
# ## Meet a model organism
#
# The course ships small transformers it trained itself on a synthetic English it generates:
# sentences about people giving each other things, facts about animals and places, sums in
# words. Because we wrote the data, we know exactly what each model *should* be doing — which
# makes them perfect for practising interpretability.
#
# `load_model` returns the Hugging Face model wrapped with hooks (chapter 1 opens them up).
# Every word of this language is a single token.

# %%
model = load_model("toylang", device=device)
print(model.cfg)

prompt = "When Mary and John went to the store, John gave a drink to"
tokens = model.to_tokens(prompt)
print(model.to_str_tokens(tokens))

# %% [markdown]
# Now use **your** softmax on the model's logits at the last position, and look at its top
# guesses for the next word. You should see `Mary` far ahead: the model has learned who is
# left to receive the drink.

# %%
logits = model(tokens)  # (batch, pos, d_vocab)
probs = softmax(logits[0, -1])
top = probs.topk(8)
words = [model.to_string(i) for i in top.indices]
for word, p in zip(words, top.values):
    print(f"{word:>10}  {p.item():.3f}")

# %%
fig = plot.line(
    top.values, x=words, title="Next-word probabilities after the prompt", xlabel="word", ylabel="probability"
)
fig.update_traces(mode="lines+markers")

# %% [markdown]
# ## A first look inside
#
# `run_with_cache` runs the model once and keeps every intermediate activation, by name.
# Here is the attention pattern of every head in layer 0: each row shows where that word
# looks. Hover over the tokens.

# %%
logits, cache = model.run_with_cache(tokens)
plot.attention_heads(cache["pattern", 0][0], model.to_str_tokens(tokens))

# %% [markdown]
# The same view as an explorer: move the slider to change layer, or type your own sentence
# (press Enter) and watch the patterns change.

# %%
widgets.attention_explorer(model, prompt, layer=1)

# %% [markdown]
# ## Switching device and model
#
# - **Device.** `setup()` picked `device` for you (a GPU when there is one). Pass
#   `device="cpu"` to `setup` or to `load_model` to choose.
# - **Model.** Every chapter runs on a bundled organism by default: `"toylang"` (4 layers,
#   GPT-2 architecture), `"toylang-llama"` (the same language, Llama architecture),
#   `"induction"` (2 layers, trained on repeated random words) and `"modadd"` (1 layer,
#   modular addition). Hugging Face causal LMs of the families `digsite` has an adapter for
#   work too — GPT-2, GPT-NeoX (Pythia), Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3
#   (text), OLMo-2, Phi-3, GPT-J and OPT, e.g. `load_model("gpt2")`,
#   `load_model("EleutherAI/pythia-70m")` or `load_model("google/gemma-2-2b")` — when you have a
#   network (`docs/models.md` says what each hook name records in each family); any other
#   family fails with a message listing these. Offline, asking for one fails at once with a message saying
#   what to use instead.

# %%
if online():
    gpt2 = load_model("gpt2", device=device)
    print(gpt2.to_string(gpt2(gpt2.to_tokens(prompt))[0, -1].argmax()))
else:
    print("Offline: skipping GPT-2. The bundled organisms above work without a network.")

# %% [markdown]
# That is the whole rhythm. Chapter 1 opens the hooks that `run_with_cache` uses and finds
# the first circuits. When you finish an exercise notebook, a facilitator (or you) can list
# what passes with `python -m digsite.progress chapters/00_orientation.ipynb`.
