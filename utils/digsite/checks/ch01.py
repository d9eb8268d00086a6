"""Checks for chapter 1: hooks, the residual stream, attention patterns and the first circuits.

Every check builds its own small seeded inputs (random tensors, or a tiny random-init
GPT-2 built once and cached), so it runs in well under a second and does not depend on
the trained organisms. References for the detectors come from `digsite.induction`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from ..hooks import Hook, HookedModel
from ..induction import (
    composition_score,
    head_ablation_hook,
    induction_score,
    per_token_loss,
    previous_token_score,
)
from .core import CheckFailed, assert_close, exercise_check, run_learner, seeded_gpt2

# --- shared inputs ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tiny_hooked() -> HookedModel:
    """A 2-layer, 4-head, 32-wide GPT-2 with random weights (seeded), large enough init that every part matters."""
    return seeded_gpt2(vocab_size=40, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                       initializer_range=0.2, bos_token_id=1, eos_token_id=1)


def _tiny_gpt2() -> nn.Module:
    """The same model, unwrapped (the exercises that add PyTorch hooks by hand)."""
    return _tiny_hooked().model


def _tiny_tokens(batch: int = 3, seg_len: int = 6, seed: int = 0) -> Tensor:
    """[bos, seg, seg] for the tiny model: (batch, 1 + 2 * seg_len)."""
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(3, 40, (batch, seg_len), generator=g)
    return torch.cat([torch.ones(batch, 1, dtype=torch.long), seg, seg], dim=1)


def _leftover_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _expect_no_hooks_left(model: nn.Module, fn_name: str) -> None:
    left = _leftover_hooks(model)
    if left:
        for module in model.modules():  # leave the shared model clean for the next check
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
        raise CheckFailed(
            f"`{fn_name}` left {left} hook(s) attached to the model: every later forward pass would still "
            "run them. Keep the handle that register_forward_hook returns and call handle.remove() "
            "(in a `finally:` block, so it also happens after an error)."
        )


def _random_pattern(batch: int, heads: int, pos: int, seed: int) -> Tensor:
    """A causal attention pattern with random rows: (batch, heads, pos, pos)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, heads, pos, pos, generator=g) * 2
    mask = torch.ones(pos, pos, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


# --- 1.1 a caching hook ----------------------------------------------------------------------


def cache_residual_stream_reference(hf_model: nn.Module, input_ids: Tensor) -> Tensor:
    """The output of every GPT-2 block (the residual stream after it): (n_layers, batch, pos, d_model)."""
    outputs: list[Tensor] = []

    def save(module: nn.Module, inputs: tuple, output) -> None:
        outputs.append((output[0] if isinstance(output, tuple) else output).detach())

    handles = [block.register_forward_hook(save) for block in hf_model.transformer.h]
    try:
        with torch.no_grad():
            hf_model(input_ids)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(outputs)


def _cache_block_inputs(hf_model: nn.Module, input_ids: Tensor) -> Tensor:
    inputs_seen: list[Tensor] = []
    handles = [
        block.register_forward_pre_hook(lambda module, args: inputs_seen.append(args[0].detach()))
        for block in hf_model.transformer.h
    ]
    with torch.no_grad():
        hf_model(input_ids)
    for handle in handles:
        handle.remove()
    return torch.stack(inputs_seen)


def _cache_without_removing(hf_model: nn.Module, input_ids: Tensor) -> Tensor:
    outputs: list[Tensor] = []
    for block in hf_model.transformer.h:
        block.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    with torch.no_grad():
        hf_model(input_ids)
    return torch.stack(outputs)


def _cache_hidden_states(hf_model: nn.Module, input_ids: Tensor) -> Tensor:
    with torch.no_grad():
        hidden = hf_model(input_ids, output_hidden_states=True).hidden_states
    return torch.stack(hidden[1:])  # the last one has ln_f applied: not the residual stream


@exercise_check(
    reference=cache_residual_stream_reference,
    wrong_answers={
        "records each block's input (a forward pre-hook) instead of its output": _cache_block_inputs,
        "never removes the hooks": _cache_without_removing,
        "uses output_hidden_states, whose last entry has the final LayerNorm applied": _cache_hidden_states,
    },
)
def check_cache_residual_stream(cache_residual_stream) -> None:
    """`cache_residual_stream(hf_model, input_ids)` returns every block's output and leaves no hook behind."""
    model = _tiny_gpt2()
    ids = _tiny_tokens()
    got = run_learner(cache_residual_stream, model, ids)
    _expect_no_hooks_left(model, "cache_residual_stream")
    assert_close(got, cache_residual_stream_reference(model, ids), what="the stacked block outputs")


# --- 1.2 a hook that replaces an output --------------------------------------------------------


def logits_without_mlp_reference(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    """Logits (batch, pos, d_vocab) with block `layer`'s MLP output replaced by zeros."""
    handle = hf_model.transformer.h[layer].mlp.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    try:
        with torch.no_grad():
            return hf_model(input_ids).logits
    finally:
        handle.remove()


def _zero_mlp_of_layer_0(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    return logits_without_mlp_reference(hf_model, input_ids, 0)


def _zero_in_place_without_return(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    def hook(module, inputs, output):
        output = torch.zeros_like(output)  # rebinds the name; the model never sees it

    handle = hf_model.transformer.h[layer].mlp.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf_model(input_ids).logits
    finally:
        handle.remove()


def _zero_mlp_hook_left_on(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    hf_model.transformer.h[layer].mlp.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    with torch.no_grad():
        return hf_model(input_ids).logits


@exercise_check(
    reference=logits_without_mlp_reference,
    wrong_answers={
        "always zeroes layer 0's MLP": _zero_mlp_of_layer_0,
        "assigns zeros to a local name instead of returning them": _zero_in_place_without_return,
        "leaves the hook attached": _zero_mlp_hook_left_on,
    },
)
def check_logits_without_mlp(logits_without_mlp) -> None:
    """`logits_without_mlp(hf_model, input_ids, layer)` zeroes that block's MLP output, and only for one run."""
    model = _tiny_gpt2()
    ids = _tiny_tokens(seed=1)
    for layer in (1, 0):
        got = run_learner(logits_without_mlp, model, ids, layer)
        _expect_no_hooks_left(model, "logits_without_mlp")
        assert_close(got, logits_without_mlp_reference(model, ids, layer), what=f"logits with layer {layer}'s MLP zeroed")


# --- 1.3 attention pattern from q and k ----------------------------------------------------------


def attention_pattern_reference(q: Tensor, k: Tensor) -> Tensor:
    """Causal attention pattern. q, k: (batch, pos, head, d_head) -> (batch, head, q_pos, k_pos)."""
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    n = q.shape[1]
    mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def _pattern_unmasked(q: Tensor, k: Tensor) -> Tensor:
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5).softmax(dim=-1)


def _pattern_unscaled(q: Tensor, k: Tensor) -> Tensor:
    return attention_pattern_reference(q * q.shape[-1] ** 0.5, k)


def _pattern_softmax_over_queries(q: Tensor, k: Tensor) -> Tensor:
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-2)


def _pattern_mask_transposed(q: Tensor, k: Tensor) -> Tensor:
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


@exercise_check(
    reference=attention_pattern_reference,
    wrong_answers={
        "forgets the causal mask": _pattern_unmasked,
        "forgets to divide by sqrt(d_head)": _pattern_unscaled,
        "softmax over the query dimension": _pattern_softmax_over_queries,
        "masks the past instead of the future": _pattern_mask_transposed,
    },
)
def check_attention_pattern(attention_pattern) -> None:
    """`attention_pattern(q, k)` scales, masks the future and softmaxes over keys."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 7, 3, 8, generator=g), torch.randn(2, 7, 3, 8, generator=g)
    assert_close(run_learner(attention_pattern, q.clone(), k.clone()), attention_pattern_reference(q, k),
                 what="the attention pattern (batch, head, q_pos, k_pos)")


# --- 1.4 per-token loss -------------------------------------------------------------------------


def _loss_not_shifted(logits: Tensor, tokens: Tensor) -> Tensor:
    log_probs = logits[:, :-1].log_softmax(-1)
    return -log_probs.gather(-1, tokens[:, :-1, None]).squeeze(-1)


def _loss_without_minus(logits: Tensor, tokens: Tensor) -> Tensor:
    return -per_token_loss(logits, tokens)


def _loss_without_log_softmax(logits: Tensor, tokens: Tensor) -> Tensor:
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)


@exercise_check(
    reference=per_token_loss,
    wrong_answers={
        "scores the current token instead of the next one": _loss_not_shifted,
        "returns log-probabilities (forgot the minus sign)": _loss_without_minus,
        "takes raw logits instead of log-softmax": _loss_without_log_softmax,
    },
)
def check_per_token_loss(per_token_loss_fn) -> None:
    """`per_token_loss(logits, tokens)` is -log p(next token) at each position: (batch, pos - 1)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 9, 11, generator=g) * 3
    tokens = torch.randint(0, 11, (3, 9), generator=g)
    assert_close(run_learner(per_token_loss_fn, logits.clone(), tokens.clone()), per_token_loss(logits, tokens),
                 what="the per-token loss (batch, pos - 1)")


# --- 1.5 previous-token score -------------------------------------------------------------------


def _prev_score_main_diagonal(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=0, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_two_back(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_upper_diagonal(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_summed(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=-1).mean(0)


@exercise_check(
    reference=previous_token_score,
    wrong_answers={
        "reads the main diagonal (attention to the current token)": _prev_score_main_diagonal,
        "off by one: two tokens back": _prev_score_two_back,
        "reads the diagonal above (the future, always 0)": _prev_score_upper_diagonal,
        "sums over positions instead of averaging": _prev_score_summed,
    },
)
def check_previous_token_score(previous_token_score_fn) -> None:
    """`previous_token_score(pattern)` is the mean of pattern[:, :, q, q - 1]: one number per head."""
    pattern = _random_pattern(2, 3, 9, seed=0)
    assert_close(run_learner(previous_token_score_fn, pattern.clone()), previous_token_score(pattern),
                 what="the previous-token score per head")


# --- 1.6 induction score ------------------------------------------------------------------------


def _induction_duplicate_offset(pattern: Tensor, seg_len: int) -> Tensor:
    q = torch.arange(seg_len + 1, 2 * seg_len + 1)
    return pattern[:, :, q, q - seg_len].mean(dim=(0, -1))


def _induction_offset_plus_two(pattern: Tensor, seg_len: int) -> Tensor:
    q = torch.arange(seg_len + 1, 2 * seg_len + 1)
    return pattern[:, :, q, q - seg_len + 2].mean(dim=(0, -1))


def _induction_offset_without_bos(pattern: Tensor, seg_len: int) -> Tensor:
    q = torch.arange(seg_len, 2 * seg_len)  # as if there were no <bos> at position 0
    return pattern[:, :, q, q - seg_len + 1].mean(dim=(0, -1))


def _induction_diagonal_everywhere(pattern: Tensor, seg_len: int) -> Tensor:
    return pattern.diagonal(offset=-(seg_len - 1), dim1=-2, dim2=-1).mean(dim=(0, -1))


@exercise_check(
    reference=induction_score,
    wrong_answers={
        "wrong offset: the previous occurrence itself (q - seg_len), a duplicate-token score": _induction_duplicate_offset,
        "wrong offset: two tokens after the previous occurrence": _induction_offset_plus_two,
        "forgets the <bos> token at position 0 (queries shifted by one)": _induction_offset_without_bos,
        "averages the diagonal over the first repeat too": _induction_diagonal_everywhere,
    },
)
def check_induction_score(induction_score_fn) -> None:
    """`induction_score(pattern, seg_len)`: mean attention from q in the second repeat to q - seg_len + 1."""
    for seg_len, seed in ((5, 1), (8, 2)):
        pattern = _random_pattern(2, 3, 2 * seg_len + 1, seed=seed)
        assert_close(run_learner(induction_score_fn, pattern.clone(), seg_len), induction_score(pattern, seg_len),
                     what=f"the induction score per head (seg_len={seg_len})")


# --- 1.7 a head-ablation hook -------------------------------------------------------------------


def _ablate_position_axis(z: Tensor, hook: Hook, head: int, means: Tensor | None = None) -> Tensor:
    z = z.clone()
    z[:, head] = 0.0 if means is None else means[..., head, :]
    return z


def _ablate_all_other_heads(z: Tensor, hook: Hook, head: int, means: Tensor | None = None) -> Tensor:
    keep = z[:, :, head].clone()
    z = torch.zeros_like(z) if means is None else means.expand_as(z).clone()
    z[:, :, head] = keep
    return z


def _ablate_zero_even_with_means(z: Tensor, hook: Hook, head: int, means: Tensor | None = None) -> Tensor:
    return head_ablation_hook(z, hook, head)


@exercise_check(
    reference=head_ablation_hook,
    wrong_answers={
        "ablates a position, not a head (indexes z[:, head])": _ablate_position_axis,
        "ablates every head except the chosen one": _ablate_all_other_heads,
        "ignores `means` (always zero-ablates)": _ablate_zero_even_with_means,
    },
)
def check_head_ablation_hook(head_ablation_hook_fn) -> None:
    """`head_ablation_hook(z, hook, head, means=None)` replaces one head's z by zeros or by its mean."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 6, 4, 5, generator=g)
    means = torch.randn(6, 4, 5, generator=g)
    hook = Hook("blocks.1.attn.hook_z")
    for head in (1, 3):
        assert_close(run_learner(head_ablation_hook_fn, z.clone(), hook, head), head_ablation_hook(z, hook, head),
                     what=f"z after zero-ablating head {head}")
        assert_close(run_learner(head_ablation_hook_fn, z.clone(), hook, head, means),
                     head_ablation_hook(z, hook, head, means), what=f"z after mean-ablating head {head}")


# --- 1.8 ablating one head of a model ----------------------------------------------------------


def loss_with_head_ablated_reference(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    """Per-token loss (batch, pos - 1) with head `head` of layer `layer` zero-ablated."""
    hook = (f"blocks.{layer}.attn.hook_z", lambda z, hook: head_ablation_hook(z, hook, head))
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[hook])
    return per_token_loss(logits, tokens)


def _ablate_in_layer_0(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    return loss_with_head_ablated_reference(model, tokens, 0, head)


def _ablate_head_0(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    return loss_with_head_ablated_reference(model, tokens, layer, 0)


def _ablation_hook_returns_nothing(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    def hook(z: Tensor, hook: Hook) -> None:
        z = z.clone()
        z[:, :, head] = 0.0  # a copy, never returned: the model runs unchanged

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return per_token_loss(logits, tokens)


@exercise_check(
    reference=loss_with_head_ablated_reference,
    wrong_answers={
        "ablates the head in layer 0 whatever the layer": _ablate_in_layer_0,
        "ablates head 0 whatever the head": _ablate_head_0,
        "the hook edits a copy and returns nothing": _ablation_hook_returns_nothing,
    },
)
def check_loss_with_head_ablated(loss_with_head_ablated) -> None:
    """`loss_with_head_ablated(model, tokens, layer, head)` runs with exactly that head zeroed."""
    model = _tiny_hooked()
    tokens = _tiny_tokens(seed=2)
    for layer, head in ((1, 2), (0, 3)):
        assert_close(run_learner(loss_with_head_ablated, model, tokens, layer, head),
                     loss_with_head_ablated_reference(model, tokens, layer, head),
                     what=f"the per-token loss with head {layer}.{head} ablated")


# --- 1.9 K-composition score ------------------------------------------------------------------


def k_composition_reference(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    """K-composition of an earlier head (W_OV, d_model x d_model) into a later one (W_QK): a scalar tensor."""
    return composition_score(W_OV, W_QK.T)


def _q_composition(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return composition_score(W_OV, W_QK)


def _composition_unnormalised(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(W_OV @ W_QK.T)


def _composition_normalised_by_product(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(W_OV @ W_QK.T) / torch.linalg.matrix_norm(W_OV @ W_QK)


@exercise_check(
    reference=k_composition_reference,
    wrong_answers={
        "Q-composition (W_OV @ W_QK): the earlier head feeding the queries": _q_composition,
        "forgets to divide by the two norms": _composition_unnormalised,
        "divides by the wrong norm": _composition_normalised_by_product,
    },
)
def check_k_composition_score(k_composition_score) -> None:
    """`k_composition_score(W_OV, W_QK)` = ||W_OV @ W_QK^T||_F / (||W_OV||_F ||W_QK||_F)."""
    g = torch.Generator().manual_seed(0)
    d_model, d_head = 16, 4
    W_OV = torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)
    W_QK = torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)
    assert_close(run_learner(k_composition_score, W_OV.clone(), W_QK.clone()), k_composition_reference(W_OV, W_QK).item(),
                 what="the K-composition score")


# --- 1.10 positional embeddings ---------------------------------------------------------------


def positional_similarity_reference(W_pos: Tensor) -> Tensor:
    """Cosine similarity between every pair of position embeddings. W_pos: (n_ctx, d_model) -> (n_ctx, n_ctx)."""
    unit = W_pos / W_pos.norm(dim=-1, keepdim=True)
    return unit @ unit.T


def _similarity_dot_product(W_pos: Tensor) -> Tensor:
    return W_pos @ W_pos.T


def _similarity_normalised_columns(W_pos: Tensor) -> Tensor:
    unit = W_pos / W_pos.norm(dim=0, keepdim=True)
    return unit @ unit.T


def _similarity_between_dimensions(W_pos: Tensor) -> Tensor:
    unit = W_pos / W_pos.norm(dim=0, keepdim=True)
    return unit.T @ unit


@exercise_check(
    reference=positional_similarity_reference,
    wrong_answers={
        "raw dot products (not normalised)": _similarity_dot_product,
        "normalises each dimension instead of each position": _similarity_normalised_columns,
        "compares dimensions, not positions (d_model x d_model)": _similarity_between_dimensions,
    },
)
def check_positional_similarity(positional_similarity) -> None:
    """`positional_similarity(W_pos)`: cosine similarity of every pair of positions, (n_ctx, n_ctx)."""
    g = torch.Generator().manual_seed(0)
    W_pos = torch.randn(10, 6, generator=g) * torch.rand(10, 1, generator=g) * 3
    assert_close(run_learner(positional_similarity, W_pos.clone()), positional_similarity_reference(W_pos),
                 what="the cosine-similarity matrix of the position embeddings")
