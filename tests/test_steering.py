"""digsite.steering and digsite.auditing: steering vectors, head effects, curves, AUROC, attribution, ablation."""

import pytest
import torch

from digsite import auditing, steering
from digsite.fixtures import tiny_gpt2, toy_tokenizer
from digsite.organisms.data import BOS_ID, PAD_ID


def tiny():
    tok = toy_tokenizer()
    return tiny_gpt2(
        tok,
        seed=3,
        vocab_size=len(tok),
        n_positions=40,
        n_embd=32,
        n_layer=2,
        n_head=2,
        initializer_range=0.3,
        bos_token_id=BOS_ID,
        eos_token_id=BOS_ID,
        pad_token_id=PAD_ID,
    )


def hooks_on(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.model.modules())


TEXTS = ["When Mary and John went to the store, John gave a drink to", "a cat is an animal", "Tom likes the red hat"]


def tokens_and_last(model, texts):
    tokens = model.to_tokens(texts)
    return tokens, auditing.final_positions(tokens, PAD_ID)


def test_unit_and_zero_vector():
    assert torch.allclose(steering.unit(torch.tensor([3.0, 4.0])), torch.tensor([0.6, 0.8]))
    with pytest.raises(ValueError, match="zero vector"):
        steering.unit(torch.zeros(3))


def test_contrastive_vector_is_a_difference_of_means_at_the_positions():
    model = tiny()
    pos, pos_at = tokens_and_last(model, TEXTS)
    neg, neg_at = tokens_and_last(model, TEXTS[:1])
    _, cache = model.run_with_cache(pos, names_filter=["blocks.1.hook_resid_pre"])
    _, cache_neg = model.run_with_cache(neg, names_filter=["blocks.1.hook_resid_pre"])
    manual = (
        torch.stack([cache["blocks.1.hook_resid_pre"][i, pos_at[i]] for i in range(3)]).mean(0)
        - cache_neg["blocks.1.hook_resid_pre"][0, neg_at[0]]
    )
    got = steering.contrastive_vector(model, pos, neg, pos_at, neg_at, "blocks.1.hook_resid_pre")
    assert torch.allclose(got, manual, atol=1e-6)
    # a prompt set against itself gives zero
    same = steering.contrastive_vector(model, pos, pos, pos_at, pos_at, "blocks.1.hook_resid_pre")
    assert same.abs().max() < 1e-6


def test_add_hook_leaves_bos_and_input_alone():
    x = torch.randn(2, 5, 4)
    before = x.clone()
    v = torch.randn(4)
    out = steering.add_hook(v, 2.0)(x, None)
    assert torch.equal(x, before)
    assert torch.equal(out[:, 0], x[:, 0])
    assert torch.allclose(out[:, 1:], x[:, 1:] + 2.0 * v)


def test_head_outputs_add_up_to_the_attention_output():
    model = tiny()
    tokens, last = tokens_and_last(model, TEXTS)
    outs = steering.head_outputs(model, tokens, last)  # (layers, heads, batch, d)
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.1.hook_attn_out"])
    b_O = model.b_O[1]
    rows = torch.arange(3)
    assert torch.allclose(outs[1].sum(0) + b_O, cache["blocks.1.hook_attn_out"][rows, last], atol=1e-5)


def test_head_effects_vanish_when_the_task_is_the_base_prompt_itself():
    model = tiny()
    tokens, last = tokens_and_last(model, TEXTS[:1])
    rows = torch.arange(1)

    def metric(logits):
        return logits[rows, last, 5].mean()

    before = hooks_on(model)
    effects = steering.head_effects(model, tokens, last, tokens, last, metric)
    assert effects.shape == (2, 2)
    assert effects.abs().max() < 1e-4
    assert hooks_on(model) == before
    other, other_last = tokens_and_last(model, TEXTS[1:])
    assert steering.head_effects(model, other, other_last, tokens, last, metric).abs().max() > 1e-3


def test_function_vector_sums_the_chosen_heads():
    means = torch.randn(3, 2, 5)
    assert torch.allclose(steering.function_vector(means, [(0, 1), (2, 0)]), means[0, 1] + means[2, 0])
    with pytest.raises(ValueError, match="at least one head"):
        steering.function_vector(means, [])


def test_sae_latent_vector_is_a_unit_decoder_row():
    W_dec = torch.randn(6, 4)
    v = steering.sae_latent_vector(W_dec, 2)
    assert torch.allclose(v, W_dec[2] / W_dec[2].norm())


def test_steering_curve_starts_at_the_unsteered_model_and_leaves_no_hook():
    model = tiny()
    tokens, _ = tokens_and_last(model, ["a cat is an animal . a dog is an animal"])
    v = torch.randn(model.cfg.d_model)
    before = hooks_on(model)
    curve = steering.steering_curve(
        model, "blocks.1.hook_resid_pre", v, [0.0, 5.0], lambda m: m(tokens)[0, -1, 7].item(), tokens
    )
    assert hooks_on(model) == before
    with torch.no_grad():
        assert curve["behaviour"][0] == pytest.approx(model(tokens)[0, -1, 7].item(), abs=1e-5)
        assert curve["loss"][0] == pytest.approx(model(tokens, return_type="loss").item(), abs=1e-5)
    assert curve["behaviour"][1] != pytest.approx(curve["behaviour"][0], abs=1e-4)
    assert curve["alpha"] == [0.0, 5.0]


def test_auroc_values_ties_and_errors():
    assert auditing.auroc(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert auditing.auroc(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1, 1, 0, 0])) == 0.0
    assert auditing.auroc(torch.tensor([1.0, 1.0]), torch.tensor([True, False])) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        auditing.auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))


def test_token_attribution_is_zero_for_the_current_token_and_first_order_right():
    model = tiny()
    tokens, last = tokens_and_last(model, ["The dog was very quiet. Anna and Ben went to the park"])
    slot = torch.tensor([2])
    rows = torch.arange(1)

    def metric(logits):
        return logits[rows, last, 40].sum() - logits[rows, last, 41].sum()

    scores = auditing.token_attribution(model, tokens, slot, metric)
    assert scores.shape == (model.cfg.d_vocab,)
    assert abs(scores[tokens[0, 2]].item()) < 1e-5
    # first order: a small step from the current embedding towards word v changes the metric by eps * score[v]
    v, eps = 17, 1e-3
    W_E = model.W_E.detach()
    delta = eps * (W_E[v] - W_E[tokens[0, 2]])

    def nudge(x, hook):
        x = x.clone()
        x[0, 2] += delta
        return x

    with torch.no_grad():
        base = metric(model(tokens)).item()
        moved = metric(model.run_with_hooks(tokens, [("hook_embed", nudge)])).item()
    assert (moved - base) / eps == pytest.approx(scores[v].item(), rel=0.05, abs=1e-3)


def test_project_out_hook_removes_the_direction_everywhere():
    x = torch.randn(2, 4, 6)
    d = 3 * torch.randn(6)
    before = x.clone()
    out = auditing.project_out_hook(d)(x, None)
    assert (out @ (d / d.norm())).abs().max() < 1e-5
    assert torch.equal(x, before)  # the hook returns a new tensor and leaves its input alone
