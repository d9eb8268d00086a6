"""Checks for chapter 1: hooks, the residual stream, attention patterns and the first circuits.

Every check builds its own small seeded inputs (random tensors, or a tiny random-init
GPT-2 built once and cached), so it runs in well under a second and does not depend on
the trained organisms. References for the detectors come from `digsite.induction`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..fixtures import tiny
from ..hooks import Hook, HookedModel
from ..induction import composition_score
from ..solutions.ch01 import (
    attention_pattern,
    cache_residual_stream,
    head_ablation_hook,
    induction_score,
    k_composition_score,
    logits_without_mlp,
    loss_with_head_ablated,
    per_token_loss,
    positional_similarity,
    previous_token_score,
)
from .core import exercise_check, verify

# --- shared inputs ---------------------------------------------------------------------------


def _tiny_hooked(n_layer: int = 2) -> HookedModel:
    """The checks' random GPT-2 (digsite.fixtures.tiny): 2 layers, or 12 to catch layer-order bugs."""
    return tiny(n_layer)


def _tiny_gpt2(n_layer: int = 2) -> nn.Module:
    """The same model, unwrapped (the exercises that add PyTorch hooks by hand)."""
    return _tiny_hooked(n_layer).model


def _tiny_tokens(batch: int = 3, seg_len: int = 6, seed: int = 0) -> Tensor:
    """[bos, seg, seg] for the tiny model: (batch, 1 + 2 * seg_len)."""
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(3, 40, (batch, seg_len), generator=g)
    return torch.cat([torch.ones(batch, 1, dtype=torch.long), seg, seg], dim=1)


def _random_pattern(batch: int, heads: int, pos: int, seed: int) -> Tensor:
    """A causal attention pattern with random rows: (batch, heads, pos, pos)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, heads, pos, pos, generator=g) * 2
    mask = torch.ones(pos, pos, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


# --- 1.1 a caching hook ----------------------------------------------------------------------


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
        # (transformers 4.x blocks return a tuple, 5.x a tensor)
        block.register_forward_hook(
            lambda module, inputs, output: outputs.append((output[0] if isinstance(output, tuple) else output).detach())
        )
    with torch.no_grad():
        hf_model(input_ids)
    return torch.stack(outputs)


def _cache_hidden_states(hf_model: nn.Module, input_ids: Tensor) -> Tensor:
    with torch.no_grad():
        hidden = hf_model(input_ids, output_hidden_states=True).hidden_states
    return torch.stack(hidden[1:])  # the last one has ln_f applied: not the residual stream


def _cache_as_list(hf_model: nn.Module, input_ids: Tensor) -> list[Tensor]:
    return list(cache_residual_stream(hf_model, input_ids))


@exercise_check(
    reference=cache_residual_stream,
    wrong_answers={
        "You recorded what goes INTO each block (a forward pre-hook); the exercise wants what comes out.": _cache_block_inputs,
        "Your hooks stay attached after the function returns, so they fire on every later run of the model.": _cache_without_removing,
        "The last entry of `output_hidden_states` has the final LayerNorm applied: it is not the residual "
        "stream after the last block.": _cache_hidden_states,
        "You returned a list of tensors; later cells index the result as one stacked tensor.": _cache_as_list,
    },
)
def check_cache_residual_stream(fn) -> None:
    """`cache_residual_stream(hf_model, input_ids)` returns every block's output and leaves no hook behind."""
    why = "Stack the per-block outputs with torch.stack: later cells index it as (n_layers, batch, pos, d_model)."
    verify(fn, _tiny_gpt2(), _tiny_tokens(batch=3), what="the stacked block outputs (2 layers, batch 3)", why=why)
    verify(
        fn,
        _tiny_gpt2(12),
        _tiny_tokens(batch=1, seg_len=4, seed=5),
        what="the stacked block outputs (12 layers, batch 1)",
        why=why,
    )


# --- 1.2 a hook that replaces an output --------------------------------------------------------


def _zero_mlp_of_layer_0(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    return logits_without_mlp(hf_model, input_ids, 0)


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


def _zero_mlp_weights(hf_model: nn.Module, input_ids: Tensor, layer: int) -> Tensor:
    mlp = hf_model.transformer.h[layer].mlp
    with torch.no_grad():
        mlp.c_proj.weight.zero_()
        mlp.c_proj.bias.zero_()
        return hf_model(input_ids).logits


@exercise_check(
    reference=logits_without_mlp,
    wrong_answers={
        "Your function always zeroes the MLP of layer 0: use the `layer` argument.": _zero_mlp_of_layer_0,
        "Assigning to `output` inside the hook only renames a local variable. A forward hook changes the "
        "output by returning the replacement.": _zero_in_place_without_return,
        "Your hook stays attached after the function returns, so every later run of the model has that MLP "
        "zeroed.": _zero_mlp_hook_left_on,
        "You zeroed the MLP's weights, which changes the model for good. A hook changes one forward pass "
        "and leaves the weights alone.": _zero_mlp_weights,
    },
)
def check_logits_without_mlp(fn) -> None:
    """`logits_without_mlp(hf_model, input_ids, layer)` zeroes that block's MLP output, and only for one run."""
    verify(
        fn, _tiny_gpt2(), _tiny_tokens(batch=3, seed=1), 1, what="logits with layer 1's MLP zeroed (2 layers, batch 3)"
    )
    verify(
        fn,
        _tiny_gpt2(12),
        _tiny_tokens(batch=1, seg_len=4, seed=2),
        10,
        what="logits with layer 10's MLP zeroed (12 layers, batch 1)",
    )


# --- 1.3 attention pattern from q and k ----------------------------------------------------------


def _pattern_unmasked(q: Tensor, k: Tensor) -> Tensor:
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5).softmax(dim=-1)


def _pattern_unscaled(q: Tensor, k: Tensor) -> Tensor:
    return attention_pattern(q * q.shape[-1] ** 0.5, k)


def _pattern_softmax_over_queries(q: Tensor, k: Tensor) -> Tensor:
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-2)


def _pattern_mask_transposed(q: Tensor, k: Tensor) -> Tensor:
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


@exercise_check(
    reference=attention_pattern,
    wrong_answers={
        "Your pattern lets a query attend to later positions: the causal mask is missing.": _pattern_unmasked,
        "The scores are not scaled: GPT-2 divides q·k by the square root of the head dimension before the "
        "softmax.": _pattern_unscaled,
        "Your softmax normalises over queries; each query's row of attention over keys should sum to 1.": (
            _pattern_softmax_over_queries
        ),
        "Your mask hides the past instead of the future: a query may see itself and earlier keys.": _pattern_mask_transposed,
    },
)
def check_attention_pattern(fn) -> None:
    """`attention_pattern(q, k)` scales, masks the future and softmaxes over keys."""
    g = torch.Generator().manual_seed(0)
    verify(
        fn,
        torch.randn(2, 7, 3, 8, generator=g),
        torch.randn(2, 7, 3, 8, generator=g),
        what="the attention pattern (batch, head, q_pos, k_pos) for batch 2, 3 heads, d_head 8",
    )
    verify(
        fn,
        torch.randn(1, 5, 2, 16, generator=g) * 2,
        torch.randn(1, 5, 2, 16, generator=g),
        what="the attention pattern for batch 1, 2 heads, d_head 16",
    )


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
        "Your loss scores the token at the same position; the prediction made at position t is for token t + 1.": (
            _loss_not_shifted
        ),
        "Your values are log-probabilities (negative). The loss is their negative.": _loss_without_minus,
        "Your loss uses raw logits; turn them into log-probabilities first (log_softmax).": _loss_without_log_softmax,
    },
)
def check_per_token_loss(fn) -> None:
    """`per_token_loss(logits, tokens)` is -log p(next token) at each position: (batch, pos - 1)."""
    g = torch.Generator().manual_seed(0)
    verify(
        fn,
        torch.randn(3, 9, 11, generator=g) * 3,
        torch.randint(0, 11, (3, 9), generator=g),
        what="the per-token loss (batch 3, pos 9)",
    )
    verify(
        fn,
        torch.randn(1, 5, 17, generator=g),
        torch.randint(0, 17, (1, 5), generator=g),
        what="the per-token loss (batch 1, pos 5)",
    )


# --- 1.5 previous-token score -------------------------------------------------------------------


def _prev_score_main_diagonal(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=0, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_two_back(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_upper_diagonal(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _prev_score_summed(pattern: Tensor) -> Tensor:
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=-1).mean(0)


def _prev_score_first_example(pattern: Tensor) -> Tensor:
    return pattern[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)


@exercise_check(
    reference=previous_token_score,
    wrong_answers={
        "Your score reads the main diagonal, which is attention to the current token. The previous token is one "
        "step to the left of it.": _prev_score_main_diagonal,
        "Your score reads attention two tokens back; the previous token is one back.": _prev_score_two_back,
        "Your score reads the diagonal above the main one: attention to the next token, which the causal mask "
        "makes 0.": _prev_score_upper_diagonal,
        "Your score adds up the attention over positions; the score is its average.": _prev_score_summed,
        "Your score uses only the first example of the batch; average over the whole batch.": _prev_score_first_example,
    },
)
def check_previous_token_score(fn) -> None:
    """`previous_token_score(pattern)` is the mean of pattern[:, :, q, q - 1]: one number per head."""
    verify(fn, _random_pattern(2, 3, 9, seed=0), what="the previous-token score per head (batch 2, 3 heads)")
    verify(fn, _random_pattern(1, 5, 6, seed=1), what="the previous-token score per head (batch 1, 5 heads)")


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
        "Your score reads attention to the earlier copy of the same token (a duplicate-token head). An induction "
        "head attends to the token AFTER that copy.": _induction_duplicate_offset,
        "Your score reads two tokens after the earlier copy; an induction head attends to the one right after it.": (
            _induction_offset_plus_two
        ),
        "Your queries are shifted by one: position 0 holds <bos>, so the second repeat starts at seg_len + 1.": (
            _induction_offset_without_bos
        ),
        "Your score averages that diagonal over every query, the first repeat included; only the second repeat "
        "can look back at an earlier copy.": _induction_diagonal_everywhere,
    },
)
def check_induction_score(fn) -> None:
    """`induction_score(pattern, seg_len)`: mean attention from q in the second repeat to q - seg_len + 1."""
    verify(fn, _random_pattern(2, 3, 11, seed=1), 5, what="the induction score per head (batch 2, seg_len 5)")
    verify(fn, _random_pattern(1, 4, 17, seed=2), 8, what="the induction score per head (batch 1, seg_len 8)")


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


def _ablate_in_place(z: Tensor, hook: Hook, head: int, means: Tensor | None = None) -> Tensor:
    z[:, :, head] = 0.0 if means is None else means[..., head, :]
    return z


@exercise_check(
    reference=head_ablation_hook,
    wrong_answers={
        "`z[:, head]` picks a position, not a head: z is (batch, pos, head, d_head), so the head is the third "
        "axis.": _ablate_position_axis,
        "Your hook replaces every head except the chosen one.": _ablate_all_other_heads,
        "Your hook ignores `means`: when it is given, the head's output becomes its mean, not zero.": (
            _ablate_zero_even_with_means
        ),
        "Your hook writes into the activation it was given; clone it first so the original is untouched.": (
            _ablate_in_place
        ),
    },
)
def check_head_ablation_hook(fn) -> None:
    """`head_ablation_hook(z, hook, head, means=None)` replaces one head's z by zeros or by its mean."""
    g = torch.Generator().manual_seed(0)
    z, means = torch.randn(2, 6, 4, 5, generator=g), torch.randn(6, 4, 5, generator=g)
    verify(fn, z, Hook("blocks.1.attn.hook_z"), 1, what="z after zero-ablating head 1 (batch 2, 4 heads)")
    verify(fn, z, Hook("blocks.1.attn.hook_z"), 3, means, what="z after mean-ablating head 3 (batch 2, 4 heads)")
    z1, means1 = torch.randn(1, 3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g)
    verify(fn, z1, Hook("blocks.0.attn.hook_z"), 0, means1, what="z after mean-ablating head 0 (batch 1, 6 heads)")
    verify(fn, z1, Hook("blocks.0.attn.hook_z"), 5, what="z after zero-ablating head 5 (batch 1, 6 heads)")


# --- 1.8 ablating one head of a model ----------------------------------------------------------


def _ablate_in_layer_0(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    return loss_with_head_ablated(model, tokens, 0, head)


def _ablate_head_0(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    return loss_with_head_ablated(model, tokens, layer, 0)


def _ablation_hook_returns_nothing(model: HookedModel, tokens: Tensor, layer: int, head: int) -> Tensor:
    def hook(z: Tensor, hook: Hook) -> None:
        z = z.clone()
        z[:, :, head] = 0.0  # a copy, never returned: the model runs unchanged

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return per_token_loss(logits, tokens)


@exercise_check(
    reference=loss_with_head_ablated,
    wrong_answers={
        "Your function ablates the head in layer 0 whatever `layer` says: put the layer into the hook's name.": (
            _ablate_in_layer_0
        ),
        "Your function ablates head 0 whatever `head` says: pass the head on to the hook.": _ablate_head_0,
        "Your hook changes a copy and returns nothing, so the model runs unchanged: return the edited "
        "activation.": _ablation_hook_returns_nothing,
    },
)
def check_loss_with_head_ablated(fn) -> None:
    """`loss_with_head_ablated(model, tokens, layer, head)` runs with exactly that head zeroed."""
    verify(
        fn,
        _tiny_hooked(),
        _tiny_tokens(batch=3, seed=2),
        1,
        2,
        what="the per-token loss with head 1.2 ablated (batch 3)",
    )
    verify(
        fn,
        _tiny_hooked(12),
        _tiny_tokens(batch=1, seg_len=4, seed=3),
        10,
        3,
        what="the per-token loss with head 10.3 ablated (12 layers, batch 1)",
    )


# --- 1.9 K-composition score ------------------------------------------------------------------


def _q_composition(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return composition_score(W_OV, W_QK)


def _composition_unnormalised(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(W_OV @ W_QK.T)


def _composition_normalised_by_product(W_OV: Tensor, W_QK: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(W_OV @ W_QK.T) / torch.linalg.matrix_norm(W_OV @ W_QK)


def _composition_as_float(W_OV: Tensor, W_QK: Tensor) -> float:
    return k_composition_score(W_OV, W_QK).item()


@exercise_check(
    reference=k_composition_score,
    wrong_answers={
        "`W_OV @ W_QK` measures Q-composition (the earlier head feeding the queries). K-composition is about "
        "the keys, which W_QK reads from the other side.": _q_composition,
        "Your score is not normalised: divide by the Frobenius norms of the two matrices.": _composition_unnormalised,
        "Your score divides by the norm of another product; normalise by the two matrices' own norms.": (
            _composition_normalised_by_product
        ),
        "You returned a Python number; later cells stack these scores, so return a (scalar) tensor.": (
            _composition_as_float
        ),
    },
)
def check_k_composition_score(fn) -> None:
    """`k_composition_score(W_OV, W_QK)` = ||W_OV @ W_QK^T||_F / (||W_OV||_F ||W_QK||_F)."""
    why = "Return a scalar tensor (no `.item()`): later cells stack the scores into a matrix."
    g = torch.Generator().manual_seed(0)
    for d_model, d_head in ((16, 4), (8, 2)):
        W_OV = torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)
        W_QK = torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)
        verify(fn, W_OV, W_QK, what=f"the K-composition score (d_model {d_model}, d_head {d_head})", why=why)


# --- 1.10 positional embeddings ---------------------------------------------------------------


def _similarity_dot_product(W_pos: Tensor) -> Tensor:
    return W_pos @ W_pos.T


def _similarity_normalised_columns(W_pos: Tensor) -> Tensor:
    unit = W_pos / W_pos.norm(dim=0, keepdim=True)
    return unit @ unit.T


def _similarity_between_dimensions(W_pos: Tensor) -> Tensor:
    unit = W_pos / W_pos.norm(dim=0, keepdim=True)
    return unit.T @ unit


@exercise_check(
    reference=positional_similarity,
    wrong_answers={
        "Your matrix holds raw dot products; cosine similarity divides each by the two vectors' lengths.": (
            _similarity_dot_product
        ),
        "Your function normalises each dimension (column) instead of each position's vector (row).": (
            _similarity_normalised_columns
        ),
        "Your matrix compares dimensions with each other (d_model x d_model); the exercise compares positions.": (
            _similarity_between_dimensions
        ),
    },
)
def check_positional_similarity(fn) -> None:
    """`positional_similarity(W_pos)`: cosine similarity of every pair of positions, (n_ctx, n_ctx)."""
    g = torch.Generator().manual_seed(0)
    verify(
        fn, torch.randn(10, 6, generator=g) * torch.rand(10, 1, generator=g) * 3, what="the similarity matrix (10 x 6)"
    )
    verify(fn, torch.randn(4, 9, generator=g) + 1, what="the similarity matrix (4 x 9)")
