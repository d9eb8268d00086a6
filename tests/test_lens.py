"""digsite.lens: the logit lens, KL to the final output, the tuned lens and the lens explorer."""

import pytest
import torch

from digsite import lens, widgets
from digsite.fixtures import seeded_gpt2


@pytest.fixture(scope="module")
def model():
    """A seeded random 2-layer GPT-2 with the toy-language tokenizer (no trained weights needed)."""
    from digsite.organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = seeded_gpt2(
        tok,
        vocab_size=len(tok),
        n_positions=64,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    hf = model.model
    with torch.no_grad():  # a visible final-LayerNorm bias, larger logits, blocks that change the stream
        hf.transformer.ln_f.bias.normal_(0, 0.5)
        hf.transformer.wte.weight.normal_(0, 1)
        for block in hf.transformer.h:
            block.attn.c_proj.weight.mul_(30)
            block.mlp.c_proj.weight.mul_(30)
    return model


PROMPTS = ["When Mary and John went to the store, John gave a drink to", "a cat is an"]


def test_prompt_batch_finds_each_last_position(model):
    tokens, last = lens.prompt_batch(model, PROMPTS)
    assert tokens.shape[0] == 2 and last.tolist() == [tokens.shape[1] - 1, 4]
    assert model.to_str_tokens(tokens[1])[last[1]] == "an"


def test_logit_lens_of_the_last_entry_is_the_models_output(model):
    tokens, _ = lens.prompt_batch(model, PROMPTS)
    stack, logits = lens.resid_stack(model, tokens)
    assert stack.shape == (3, 2, tokens.shape[1], 16)
    lens_logits = lens.logit_lens(model, stack)
    torch.testing.assert_close(lens_logits[-1], logits, atol=1e-4, rtol=1e-4)
    kl = lens.kl_to_final(lens_logits, logits)
    assert kl.shape == (3,) and kl[-1].abs() < 1e-5 and (kl[:-1] > 0).all()


def test_logit_lens_matches_the_cache_with_recomputed_scale_not_the_cached_one(model):
    tokens = model.to_tokens(PROMPTS[0])
    stack, _ = lens.resid_stack(model, tokens)
    _, cache = model.run_with_cache(tokens)
    ours = model.norm_module(None)(stack)
    cached = cache.accumulated_resid(apply_ln=True)  # TransformerLens's convention: the cached final scale
    torch.testing.assert_close(ours[-1], cached[-1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours[0], cached[0], atol=1e-3)


def test_kl_to_final_with_a_mask_averages_only_the_masked_positions():
    gen = torch.Generator().manual_seed(0)
    lens_logits, final = torch.randn(3, 2, 4, 7, generator=gen), torch.randn(2, 4, 7, generator=gen)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    per = lens.kl_to_final(lens_logits[:, mask], final[mask])
    torch.testing.assert_close(lens.kl_to_final(lens_logits, final, mask), per)
    assert not torch.allclose(lens.kl_to_final(lens_logits, final), per)


def test_answer_ranks_and_first_top1_layer():
    logits = torch.zeros(3, 2, 4, 5)
    logits[0, 0, 2, 1], logits[1, 0, 2, 4], logits[2, 0, 2, 4] = 5.0, 5.0, 5.0  # prompt 0: answer 4 top-1 from entry 1
    logits[:, 1, 1, 0] = 1.0  # prompt 1: answer 3 never top-1
    logits[:, 1, 3, 3] = 9.0  # ... except at a padding position, which must be ignored
    probs, ranks = lens.answer_ranks(logits, torch.tensor([2, 1]), torch.tensor([4, 3]))
    assert ranks[:, 0].tolist() == [1, 0, 0] and ranks[:, 1].tolist() == [1, 1, 1]
    assert probs.shape == (3, 2) and probs[1, 0] > 0.9
    assert lens.first_top1_layer(ranks).tolist() == [1, 3]
    assert lens.first_top1_layer(torch.tensor([[0], [1], [0]])).tolist() == [2]  # top-1, lost, regained


def test_an_untrained_tuned_lens_is_the_logit_lens(model):
    stack, _ = lens.resid_stack(model, model.to_tokens(PROMPTS[1]))
    tuned = lens.TunedLens(2, 16)
    torch.testing.assert_close(tuned.logits(model, stack), lens.logit_lens(model, stack))


def test_training_the_tuned_lens_lowers_kl_and_leaves_the_model_alone(model):
    texts = ["a cat is an animal .", "three plus four is seven .", *PROMPTS] * 4
    stack, final = lens.collect_positions(model, texts, batch_size=5)
    n_real = sum(len(model.tokenizer.encode(t, add_special_tokens=False)) + 1 for t in texts)
    assert stack.shape == (3, n_real, 16) and final.shape[0] == n_real
    before = [p.clone() for p in model.model.parameters()]
    tuned, losses = lens.train_tuned_lens(model, stack, final, steps=60, batch_size=64, lr=1e-2, progress=False)
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        kl_logit = lens.kl_to_final(lens.logit_lens(model, stack), final)
        kl_tuned = lens.kl_to_final(tuned.logits(model, stack), final)
    assert (kl_tuned[:-1] < kl_logit[:-1]).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.model.parameters()))
    assert all(p.requires_grad for p in model.model.parameters())


def test_top_tokens_and_figure(model):
    top = lens.top_tokens(model, PROMPTS[1], layer=2, k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    final = model(model.to_tokens(PROMPTS[1]))[0, -1].softmax(-1)
    assert top[0][1] == pytest.approx(final.max().item(), abs=1e-5)
    fig = lens.lens_figure(model, PROMPTS[1])
    heat = fig.data[0]
    assert heat.z.shape == (3, 5) and len(heat.text) == 3 and len(heat.x) == 5
    assert list(heat.y) == ["0_pre", "1_pre", "final_post"]


def test_lens_explorer_updates_when_the_slider_or_the_prompt_changes(model):
    tuned = lens.TunedLens(2, 16)
    with torch.no_grad():
        tuned.translators[0].weight.normal_(0, 1)
    explorer = widgets.lens_explorer(model, PROMPTS[1], k=3, tuned=tuned)
    assert explorer.layer.max == 2 and explorer.layer.value == 2
    at_output = explorer.table.value
    assert "final_post" in at_output and at_output.count("<tr>") == 5
    explorer.layer.value = 0
    at_embed = explorer.table.value
    assert at_embed != at_output and "0_pre" in at_embed
    explorer.lens.value = "tuned lens"
    assert explorer.table.value != at_embed and "tuned lens" in explorer.table.value
    assert explorer.table.value.count("<tr>") == 5
    explorer.prompt.value = PROMPTS[0]
    assert explorer.table.value.count("<tr>") == len(model.to_str_tokens(PROMPTS[0]))
    assert "drink" in explorer.table.value
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_lens_explorer_without_a_tuned_lens_offers_only_the_logit_lens(model):
    explorer = widgets.lens_explorer(model, PROMPTS[1])
    assert list(explorer.lens.options) == ["logit lens"]


def test_the_chapter_loop_trains_the_same_translators_as_the_package(model):
    """Exercise 2.9's answer and lens.train_tuned_lens follow one protocol: same seed, same translators and losses."""
    from digsite.solutions.ch02 import train_translators

    stack, final = lens.collect_positions(model, ["a cat is an animal .", *PROMPTS], batch_size=2)
    settings = dict(steps=15, batch_size=24, lr=2e-2, seed=5)
    tuned, losses = lens.train_tuned_lens(model, stack, final, progress=False, **settings)
    again, losses_again = lens.train_tuned_lens(model, stack, final, progress=False, **settings)
    translators, ours = train_translators(model, stack, final, **settings)
    assert losses == losses_again and all(torch.equal(a, b) for a, b in zip(tuned.parameters(), again.parameters()))
    assert ours == pytest.approx(losses, rel=1e-4, abs=1e-5) and losses[-1] < losses[0]
    for a, b in zip(translators.parameters(), tuned.parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    other, _ = lens.train_tuned_lens(model, stack, final, progress=False, **{**settings, "seed": 6})
    assert not torch.allclose(other.translators[0].weight, tuned.translators[0].weight)


def test_a_heads_paths_add_up_to_its_direct_logit_attribution(model):
    """Exercise 2.10's split of a head's credit is complete: rows and positions sum to the head's row of 2.6."""
    from digsite.solutions.ch02 import decompose_by_head, direct_logit_attribution, head_path_attribution

    tokens, final_pos = lens.prompt_batch(model, PROMPTS)
    _, cache = model.run_with_cache(tokens)
    correct, wrong = model.to_tokens(["Mary", "animal"], prepend_bos=False)[:, 0], torch.tensor([5, 9])
    heads = decompose_by_head(cache, model)
    with torch.no_grad():
        total = direct_logit_attribution(model, cache, heads, correct, wrong, final_pos)
        for layer, head in ((0, 1), (1, 0)):
            parts = heads[: 2 + layer * (model.cfg.n_heads + 2)]
            paths = head_path_attribution(model, cache, parts, layer, head, correct, wrong, final_pos)
            assert paths.shape == (parts.shape[0] + 1, 2, tokens.shape[1])
            torch.testing.assert_close(paths.sum((0, 2)), total[2 + layer * (model.cfg.n_heads + 2) + head])
            assert (paths[:, 1, final_pos[1] + 1 :] == 0).all()  # nothing is read from padding after the prompt
            whole = head_path_attribution(
                model, cache, cache.decompose_resid(layer=layer), layer, head, correct, wrong, final_pos
            )
            torch.testing.assert_close(whole[:-1].sum(0), paths[:-1].sum(0), atol=1e-5, rtol=1e-4)
