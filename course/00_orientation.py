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
# - Know how to switch device (CPU / GPU) and model (organism / GPT-2).
#
# **Prerequisites:** Python and a little PyTorch (tensors, indexing, `softmax`).
#
# **Time:** about 15 minutes.

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

from digsite.checks import ch00
from digsite.notebook import setup

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
