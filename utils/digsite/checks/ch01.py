"""Checks for chapter 1: hooks, the residual stream, attention patterns and the first circuits.

Every check builds its own small seeded inputs (random tensors, or a tiny random-init
GPT-2 built once and cached), so it runs in well under a second and does not depend on
the trained organisms. References for the detectors come from `digsite.induction`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..factored import FactoredMatrix
from ..fixtures import tiny
from ..hooks import Hook, HookedModel
from ..induction import ablated_loss, composition_score
from ..solutions.ch01 import (
    attention_pattern,
    cache_residual_stream,
    composition_scores,
    copying_scores,
    full_ov_circuit,
    head_ablation_hook,
    induction_score,
    k_composition_score,
    logits_without_mlp,
    loss_with_head_ablated,
    loss_with_path_ablated,
    per_token_loss,
    positional_similarity,
    previous_position_fraction,
    previous_token_score,
    score_decomposition,
)
from .core import CheckFailed, exercise_check, verify

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
    """`k_composition_score(W_OV, W_QK)`: the K-composition score of one pair, a 0-d tensor."""
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


# --- 1.11 the full OV circuit -------------------------------------------------------------------


def _as_dense(circuit: object) -> Tensor:
    """The matrix a FactoredMatrix stands for; a clear verdict when the answer is not one."""
    if not isinstance(circuit, FactoredMatrix):
        raise CheckFailed(
            f"expected a FactoredMatrix, got {type(circuit).__name__}. Return FactoredMatrix(left, right): "
            "the full OV circuit of GPT-2 would not fit in memory as a tensor.",
            kind="type",
        )
    if circuit.rank_bound > min(circuit.shape[-2:]) // 2:
        raise CheckFailed(
            f"your FactoredMatrix has inner dimension {circuit.rank_bound}, as large as d_model: one factor "
            "already holds a d_model-sized product. Keep the inner dimension d_head (group the product as "
            "(W_E W_V) and (W_O W_U)).",
            kind="type",
        )
    return circuit.full()


class _NoWholeMatrix(FactoredMatrix):
    """A FactoredMatrix whose `.full()` refuses: the contract says the whole matrix is never formed.

    Indexing and products return plain FactoredMatrix objects, so forming a few rows of them is allowed.
    """

    def full(self) -> Tensor:
        raise CheckFailed(
            f"your function formed the whole {' x '.join(map(str, self.shape))} matrix with .full(). The "
            "contract forms only a few rows at a time (circuit[i:j].full()) or stays factored: for GPT-2 the "
            "whole matrix would not fit in memory.",
            kind="raised",
        )


def _ov_transposed_order(W_E: Tensor, W_V: Tensor, W_O: Tensor, W_U: Tensor) -> FactoredMatrix:
    return FactoredMatrix(W_E @ W_O.T, W_V.T @ W_U)


def _ov_without_embedding(W_E: Tensor, W_V: Tensor, W_O: Tensor, W_U: Tensor) -> FactoredMatrix:
    return FactoredMatrix(W_U.T @ W_V, W_O @ W_U)


@exercise_check(
    reference=full_ov_circuit,
    wrong_answers={
        "Your circuit multiplies the head's matrices in the wrong order: the value map reads the embedding "
        "first (W_E @ W_V, then W_O), in row-vector convention.": _ov_transposed_order,
        "Your circuit starts from the unembedding; the rows are tokens the head attends to, so start from "
        "their embeddings W_E.": _ov_without_embedding,
    },
)
def check_full_ov_circuit(fn) -> None:
    """`full_ov_circuit(W_E, W_V, W_O, W_U)`: a FactoredMatrix equal to W_E W_V W_O W_U."""
    g = torch.Generator().manual_seed(0)
    for d_vocab, d_model, d_head in ((11, 8, 3), (7, 6, 2)):
        verify(
            fn,
            torch.randn(d_vocab, d_model, generator=g),
            torch.randn(d_model, d_head, generator=g),
            torch.randn(d_head, d_model, generator=g),
            torch.randn(d_model, d_vocab, generator=g),
            what=f"the full OV circuit (d_vocab {d_vocab}, d_model {d_model}, d_head {d_head})",
            use=_as_dense,
        )


# --- 1.12 copying scores --------------------------------------------------------------------------


def _copying_by_columns(circuit: FactoredMatrix, rows_per_step: int = 1024) -> tuple[Tensor, Tensor]:
    full = circuit[: circuit.shape[0]].full()
    top = (full.argmax(dim=0) == torch.arange(full.shape[0])).float().mean()
    return top, copying_scores(circuit)[1]


def _copying_real_parts(circuit: FactoredMatrix, rows_per_step: int = 1024) -> tuple[Tensor, Tensor]:
    eigenvalues = circuit.eigenvalues()
    return copying_scores(circuit)[0], eigenvalues.real.sum() / eigenvalues.real.abs().sum()


def _copying_singular_values(circuit: FactoredMatrix, rows_per_step: int = 1024) -> tuple[Tensor, Tensor]:
    S = circuit.S
    return copying_scores(circuit)[0], S.sum() / S.abs().sum()


def _copying_diagonal_positive(circuit: FactoredMatrix, rows_per_step: int = 1024) -> tuple[Tensor, Tensor]:
    top = (circuit[: circuit.shape[0]].full().diagonal() > 0).float().mean()
    return top, copying_scores(circuit)[1]


def _copying_circuit(n: int, r: int, sign: float, seed: int) -> FactoredMatrix:
    """A random (n, n) circuit of rank r that copies (sign 1) or suppresses (sign -1) with noise."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, r, generator=g)
    return _NoWholeMatrix(A, sign * A.T + 0.8 * torch.randn(r, n, generator=g))


@exercise_check(
    reference=copying_scores,
    wrong_answers={
        "Your top-1 fraction takes the largest entry of each column; row t holds the logits written when the "
        "head attends to token t, so take the largest entry of each row.": _copying_by_columns,
        "Your eigenvalue score divides by the absolute real parts; complex eigenvalues count with their full "
        "size (abs of the complex number).": _copying_real_parts,
        "Your eigenvalue score uses singular values, which are never negative (so it is always 1); use the "
        "eigenvalues, whose sign says copy or suppress.": _copying_singular_values,
        "Your top-1 fraction counts positive diagonal entries; the question is whether the own logit is the "
        "LARGEST in its row.": _copying_diagonal_positive,
    },
)
def check_copying_scores(fn) -> None:
    """`copying_scores(circuit, rows_per_step)`: (top-1 fraction, eigenvalue score), 0-d tensors."""
    why = "Return a tuple of two 0-d tensors (top, eig); the next cell turns each into a float."
    verify(fn, _copying_circuit(23, 4, 1.0, seed=0), 5, what="the copying scores (23 tokens, rank 4, copying)", why=why)
    verify(
        fn, _copying_circuit(17, 3, -1.0, seed=1), what="the copying scores (17 tokens, rank 3, suppressing)", why=why
    )


# --- 1.13 positional QK of the previous-token head -------------------------------------------------


def _prev_position_unmasked(W_pos: Tensor, W_Q: Tensor, W_K: Tensor) -> Tensor:
    scores = (W_pos @ W_Q) @ (W_pos @ W_K).T
    return (scores.argmax(dim=-1)[1:] == torch.arange(W_pos.shape[0] - 1)).float().mean()


def _prev_position_own_position(W_pos: Tensor, W_Q: Tensor, W_K: Tensor) -> Tensor:
    n = W_pos.shape[0]
    scores = ((W_pos @ W_Q) @ (W_pos @ W_K).T).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return (scores.argmax(dim=-1)[1:] == torch.arange(1, n)).float().mean()


def _prev_position_query_key_swapped(W_pos: Tensor, W_Q: Tensor, W_K: Tensor) -> Tensor:
    return previous_position_fraction(W_pos, W_K, W_Q)


def _prev_position_including_first(W_pos: Tensor, W_Q: Tensor, W_K: Tensor) -> Tensor:
    n = W_pos.shape[0]
    scores = ((W_pos @ W_Q) @ (W_pos @ W_K).T).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return (scores.argmax(dim=-1) == torch.arange(n) - 1).float().mean()


def _prev_position_self_hidden(W_pos: Tensor, W_Q: Tensor, W_K: Tensor) -> Tensor:
    n = W_pos.shape[0]
    scores = ((W_pos @ W_Q) @ (W_pos @ W_K).T).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(0), float("-inf"))
    return (scores[1:].argmax(dim=-1) == torch.arange(n - 1)).float().mean()


def _previous_position_inputs(n_ctx: int, d_model: int, d_head: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Position vectors and a QK circuit that partly prefers the previous position."""
    g = torch.Generator().manual_seed(seed)
    W_pos = torch.randn(n_ctx, d_model, generator=g)
    W_Q = torch.randn(d_model, d_head, generator=g)
    shift = torch.linalg.lstsq(W_pos[1:], W_pos[:-1]).solution  # maps position p to about p - 1
    W_K = torch.linalg.pinv(shift.T) @ W_Q + 0.7 * torch.randn(d_model, d_head, generator=g)
    return W_pos, W_Q, W_K


@exercise_check(
    reference=previous_position_fraction,
    wrong_answers={
        "Your argmax runs over every key, future ones included; a query can only attend to keys at or before "
        "its own position, so mask the future first.": _prev_position_unmasked,
        "Your fraction counts the query's own position; the previous position is one to the left of it.": (
            _prev_position_own_position
        ),
        "Your queries use W_K and your keys W_Q: the query side of the circuit is W_Q.": (
            _prev_position_query_key_swapped
        ),
        "Your fraction includes query position 0, which has no previous position; start at q = 1.": (
            _prev_position_including_first
        ),
        "Your mask hides the query's own position too; the causal mask lets a query see itself, and a head "
        "that prefers its own position must count as missing q - 1.": _prev_position_self_hidden,
    },
)
def check_previous_position_fraction(fn) -> None:
    """`previous_position_fraction(W_pos, W_Q, W_K)`: fraction of q >= 1 whose best visible key is q - 1."""
    verify(
        fn, *_previous_position_inputs(12, 16, 4, seed=0), what="the previous-position fraction (12 positions, d 16)"
    )
    verify(fn, *_previous_position_inputs(9, 12, 6, seed=3), what="the previous-position fraction (9 positions, d 12)")
    W_pos, W_Q, W_K = _previous_position_inputs(10, 8, 4, seed=5)
    verify(
        fn,
        W_pos,
        W_Q,
        0.5 * W_K + W_Q,  # a query often scores its own position highest: the diagonal must stay visible
        what="the previous-position fraction (10 positions, a head that often attends to itself)",
    )


# --- 1.14 decomposing attention scores ---------------------------------------------------------------


def _decomposition_inputs(n_parts: int, batch: int, pos: int, d_model: int, d_head: int, seed: int) -> tuple:
    """Parts, the ln1 scale and weight, W_Q, W_K, and the q and k a LayerNorm with biases would give."""
    g = torch.Generator().manual_seed(seed)
    parts = torch.randn(n_parts, batch, pos, d_model, generator=g) * torch.rand(n_parts, 1, 1, 1, generator=g) * 2
    stream = parts.sum(0)
    weight, bias = 1 + 0.3 * torch.randn(d_model, generator=g), 0.2 * torch.randn(d_model, generator=g)
    scale = ((stream - stream.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    normed = (stream - stream.mean(-1, keepdim=True)) / scale * weight + bias
    W_Q, W_K = torch.randn(d_model, d_head, generator=g), torch.randn(d_model, d_head, generator=g)
    q = normed @ W_Q + 0.5 * torch.randn(d_head, generator=g)
    k = normed @ W_K + 0.5 * torch.randn(d_head, generator=g)
    return parts, scale, weight, W_Q, W_K, q, k


def _decomposition_not_centred(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    normed = parts / scale * ln_weight  # the mean over d_model left in
    q_parts, k_parts = normed @ W_Q, normed @ W_K
    q_parts = torch.cat([q_parts, (q - q_parts.sum(0))[None]])
    k_parts = torch.cat([k_parts, (k - k_parts.sum(0))[None]])
    return torch.einsum("ibqd,jbkd->ijbqk", q_parts, k_parts) / W_Q.shape[-1] ** 0.5


def _decomposition_times_scale(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    return score_decomposition(parts, 1 / scale, ln_weight, W_Q, W_K, q, k)


def _decomposition_unscaled(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    return score_decomposition(parts, torch.ones_like(scale), ln_weight, W_Q, W_K, q, k)


def _decomposition_no_sqrt(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    return score_decomposition(parts, scale, ln_weight, W_Q, W_K, q, k) * W_Q.shape[-1] ** 0.5


def _decomposition_sides_swapped(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    return score_decomposition(parts, scale, ln_weight, W_Q, W_K, q, k).transpose(0, 1)


def _decomposition_bias_as_zero(parts, scale, ln_weight, W_Q, W_K, q, k) -> Tensor:
    full = score_decomposition(parts, scale, ln_weight, W_Q, W_K, q, k)
    full[-1] = 0.0
    full[:, -1] = 0.0
    return full


@exercise_check(
    reference=score_decomposition,
    wrong_answers={
        "Your parts are not centred: LayerNorm subtracts each vector's mean over d_model before dividing, and "
        "that is linear, so centre each part.": _decomposition_not_centred,
        "Your parts are not divided by the LayerNorm's scale; hold it at the cached value and divide each part "
        "by it.": _decomposition_unscaled,
        "Your parts are multiplied by the LayerNorm's scale; the LayerNorm divides by it.": _decomposition_times_scale,
        "Your scores are not divided by sqrt(d_head), as the model's are.": _decomposition_no_sqrt,
        "Your first axis is the key side and the second the query side; entry [i, j] is part i on the QUERY "
        "side, part j on the key side.": _decomposition_sides_swapped,
        "Your last row and column are zero: the biases (the LayerNorm's bias, b_Q, b_K) are in the model's q "
        "and k but in no part, so the leftover q - (sum of the parts' queries) is a part of its own.": (
            _decomposition_bias_as_zero
        ),
    },
)
def check_score_decomposition(fn) -> None:
    """`score_decomposition(parts, scale, ln_weight, W_Q, W_K, q, k)`: (n + 1, n + 1, batch, q, k), adding up."""
    verify(
        fn,
        *_decomposition_inputs(3, 2, 5, 8, 4, seed=0),
        what="the score decomposition (3 parts, batch 2, 5 positions)",
        atol=1e-3,
    )
    verify(
        fn,
        *_decomposition_inputs(5, 1, 4, 6, 2, seed=1),
        what="the score decomposition (5 parts, batch 1, 4 positions)",
        atol=1e-3,
    )


# --- 1.15 composition scores -----------------------------------------------------------------------


def _compositions_q_and_k_swapped(W_OV_src, W_QK_dst, W_OV_dst) -> Tensor:
    return composition_scores(W_OV_src, W_QK_dst, W_OV_dst)[[1, 0, 2]]


def _compositions_v_reversed(W_OV_src, W_QK_dst, W_OV_dst) -> Tensor:
    scores = composition_scores(W_OV_src, W_QK_dst, W_OV_dst).clone()
    src = FactoredMatrix(W_OV_src.A[:, None], W_OV_src.B[:, None])
    ov = FactoredMatrix(W_OV_dst.A[None], W_OV_dst.B[None])
    scores[2] = (ov @ src).norm() / (src.norm() * ov.norm())
    return scores


def _compositions_unnormalised(W_OV_src, W_QK_dst, W_OV_dst) -> Tensor:
    src = FactoredMatrix(W_OV_src.A[:, None], W_OV_src.B[:, None])
    qk = FactoredMatrix(W_QK_dst.A[None], W_QK_dst.B[None])
    ov = FactoredMatrix(W_OV_dst.A[None], W_OV_dst.B[None])
    return torch.stack([(src @ qk).norm(), (src @ qk.T).norm(), (src @ ov).norm()])


def _compositions_src_dst_swapped(W_OV_src, W_QK_dst, W_OV_dst) -> Tensor:
    return composition_scores(W_OV_src, W_QK_dst, W_OV_dst).transpose(1, 2)


def _compositions_k_untransposed(W_OV_src, W_QK_dst, W_OV_dst) -> Tensor:
    scores = composition_scores(W_OV_src, W_QK_dst, W_OV_dst).clone()
    scores[1] = scores[0]
    return scores


def _random_heads(n: int, d_model: int, d_head: int, g: torch.Generator) -> FactoredMatrix:
    return _NoWholeMatrix(torch.randn(n, d_model, d_head, generator=g), torch.randn(n, d_head, d_model, generator=g))


@exercise_check(
    reference=composition_scores,
    wrong_answers={
        "Your Q- and K-composition are swapped: the earlier head's output feeds the queries through "
        "W_OV_src @ W_QK, the keys through W_QK's other side (transpose it).": _compositions_q_and_k_swapped,
        "Your V-composition runs the later head first: the earlier head writes, then the later head's OV "
        "circuit reads that, so W_OV_src comes first in the product.": _compositions_v_reversed,
        "Your scores are not normalised: divide each product's norm by the norms of its two matrices.": (
            _compositions_unnormalised
        ),
        "Your result is (3, n_dst, n_src); rows are the earlier (source) heads, columns the later ones.": (
            _compositions_src_dst_swapped
        ),
        "Your K-composition equals your Q-composition: the earlier head's output reaches the keys from "
        "W_QK's other side, so multiply by the transpose of W_QK.": _compositions_k_untransposed,
    },
)
def check_composition_scores(fn) -> None:
    """`composition_scores(W_OV_src, W_QK_dst, W_OV_dst)`: (3, n_src, n_dst) Q-, K-, V-composition."""
    g = torch.Generator().manual_seed(0)
    for n_src, n_dst, d_model, d_head in ((3, 2, 10, 3), (2, 4, 8, 2)):
        verify(
            fn,
            _random_heads(n_src, d_model, d_head, g),
            _random_heads(n_dst, d_model, d_head, g),
            _random_heads(n_dst, d_model, d_head, g),
            what=f"the composition scores ({n_src} earlier heads, {n_dst} later heads, d_model {d_model})",
        )


# --- 1.16 ablating one path ---------------------------------------------------------------------------


def _path_everywhere(model: HookedModel, tokens: Tensor, head: tuple[int, int], dst_layer: int, side: str) -> Tensor:
    return ablated_loss(model, tokens, [head], mode="mean")


def _path_without_norm(model: HookedModel, tokens: Tensor, head: tuple[int, int], dst_layer: int, side: str) -> Tensor:
    layer, h = head
    _, clean = model.run_with_cache(tokens, names_filter=[f"blocks.{layer}.attn.hook_z"])
    with torch.no_grad():
        out = clean["z", layer][:, :, h] @ model.W_O[layer, h]
        W = {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[side][dst_layer]
        delta = torch.einsum("bpm,hmd->bphd", out.mean(0) - out, W)
        logits = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{dst_layer}.attn.hook_{side}", lambda act, hook: act + delta)]
        )
    return per_token_loss(logits, tokens)


def _path_zero_ablated(model: HookedModel, tokens: Tensor, head: tuple[int, int], dst_layer: int, side: str) -> Tensor:
    layer, h = head
    resid_name = f"blocks.{dst_layer}.hook_resid_pre"
    _, clean = model.run_with_cache(tokens, names_filter=[f"blocks.{layer}.attn.hook_z", resid_name])
    with torch.no_grad():
        out = clean["z", layer][:, :, h] @ model.W_O[layer, h]
        ln = model.norm_module(dst_layer, "ln1")
        change = ln(clean[resid_name] - out) - ln(clean[resid_name])
        W = {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[side][dst_layer]
        delta = torch.einsum("bpm,hmd->bphd", change, W)
        logits = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{dst_layer}.attn.hook_{side}", lambda act, hook: act + delta)]
        )
    return per_token_loss(logits, tokens)


def _path_always_keys(model: HookedModel, tokens: Tensor, head: tuple[int, int], dst_layer: int, side: str) -> Tensor:
    return loss_with_path_ablated(model, tokens, head, dst_layer, "k")


@exercise_check(
    reference=loss_with_path_ablated,
    wrong_answers={
        "Your loss is that of ablating the head everywhere; only the chosen side of the later layer should see "
        "the ablated head, the rest of the model the clean one.": _path_everywhere,
        "Your change skips the receiver's LayerNorm: the later layer reads ln1(stream), so put the ablated and "
        "the clean stream through the norm and take the difference.": _path_without_norm,
        "Your ablation removes the head's output (zero-ablation); this exercise replaces it by its mean over "
        "the batch.": _path_zero_ablated,
        "Your function always changes the keys; use `side` to pick the queries, keys or values.": _path_always_keys,
    },
)
def check_loss_with_path_ablated(fn) -> None:
    """`loss_with_path_ablated(model, tokens, head, dst_layer, side)`: one path mean-ablated, per-token loss."""
    verify(
        fn,
        _tiny_hooked(),
        _tiny_tokens(batch=3, seed=4),
        (0, 1),
        1,
        "k",
        what="the per-token loss with head 0.1 → layer 1's keys mean-ablated (batch 3)",
    )
    verify(
        fn,
        _tiny_hooked(12),
        _tiny_tokens(batch=2, seg_len=4, seed=5),
        (3, 2),
        7,
        "v",
        what="the per-token loss with head 3.2 → layer 7's values mean-ablated (12 layers, batch 2)",
    )
    verify(
        fn,
        _tiny_hooked(),
        _tiny_tokens(batch=4, seg_len=5, seed=6),
        (0, 3),
        1,
        "q",
        what="the per-token loss with head 0.3 → layer 1's queries mean-ablated (batch 4)",
    )
