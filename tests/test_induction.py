"""digsite.induction: head detectors, per-token loss, ablation, K-composition and the explorer widget."""

from functools import lru_cache, partial

import pytest
import torch
import torch.nn.functional as F

from digsite import induction as I
from digsite import widgets
from digsite.fixtures import seeded_gpt2
from digsite.hooks import Hook, HookedModel

SEG = 5


@lru_cache(maxsize=1)
def tiny() -> HookedModel:
    """A seeded random 2-layer GPT-2 with a word-level-like tokenizer-free setup."""
    return seeded_gpt2(
        vocab_size=30,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=64,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=1,
    )


def repeated(batch: int = 3, seg_len: int = SEG) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    seg = torch.randint(3, 30, (batch, seg_len), generator=g)
    return torch.cat([torch.ones(batch, 1, dtype=torch.long), seg, seg], dim=1)


def one_hot_pattern(targets: dict[int, int], n: int) -> torch.Tensor:
    """(1, 1, n, n): each query q attends fully to targets.get(q, q)."""
    pattern = torch.zeros(1, 1, n, n)
    for q in range(n):
        pattern[0, 0, q, targets.get(q, q)] = 1.0
    return pattern


def test_previous_token_score_of_a_perfect_previous_token_head():
    n = 2 * SEG + 1
    prev = one_hot_pattern({q: q - 1 for q in range(1, n)}, n)
    assert I.previous_token_score(prev).item() == pytest.approx(1.0)
    assert I.previous_token_score(one_hot_pattern({}, n)).item() == pytest.approx(0.0)


def test_induction_and_duplicate_scores_pick_their_offsets():
    n = 2 * SEG + 1
    second = range(SEG + 1, n)
    induction = one_hot_pattern({q: q - SEG + 1 for q in second}, n)
    duplicate = one_hot_pattern({q: q - SEG for q in second}, n)
    assert I.induction_score(induction, SEG).item() == pytest.approx(1.0)
    assert I.duplicate_token_score(induction, SEG).item() == pytest.approx(0.0)
    assert I.duplicate_token_score(duplicate, SEG).item() == pytest.approx(1.0)
    assert I.induction_score(duplicate, SEG).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="positions"):
        I.induction_score(induction, SEG + 1)


def test_head_scores_has_one_score_per_head_and_matches_the_cache():
    model, tokens = tiny(), repeated()
    scores = I.head_scores(model, tokens, partial(I.induction_score, seg_len=SEG))
    assert scores.shape == (2, 4)
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_pattern"])
    torch.testing.assert_close(scores[1], I.induction_score(cache["blocks.1.attn.hook_pattern"], SEG))


def test_per_token_loss_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, tokens = torch.randn(2, 6, 9, generator=g), torch.randint(0, 9, (2, 6), generator=g)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 9), tokens[:, 1:].reshape(-1), reduction="none")
    torch.testing.assert_close(I.per_token_loss(logits, tokens), expected.reshape(2, 5))


def test_head_ablation_hook_touches_only_its_head():
    z = torch.randn(2, 4, 3, 5)
    out = I.head_ablation_hook(z, Hook("blocks.0.attn.hook_z"), head=1)
    assert (out[:, :, 1] == 0).all()
    torch.testing.assert_close(out[:, :, [0, 2]], z[:, :, [0, 2]])
    means = torch.randn(4, 3, 5)
    out = I.head_ablation_hook(z, Hook("blocks.0.attn.hook_z"), head=2, means=means)
    torch.testing.assert_close(out[:, :, 2], means[:, 2].expand(2, 4, 5))
    assert not torch.equal(out, z) and torch.equal(z, z.clone())  # the input is not modified


def test_ablated_loss_clean_matches_the_model_and_ablation_changes_it():
    model, tokens = tiny(), repeated()
    clean = I.ablated_loss(model, tokens)
    expected = model(tokens, return_type="loss")
    assert clean.mean().item() == pytest.approx(expected.item(), rel=1e-5)
    for mode in ("zero", "mean"):
        ablated = I.ablated_loss(model, tokens, [(1, 0)], mode=mode)
        assert ablated.shape == clean.shape and not torch.allclose(ablated, clean)
    with pytest.raises(ValueError, match="mode"):
        I.ablated_loss(model, tokens, [(1, 0)], mode="resample")


def test_mean_z_has_one_mean_per_layer():
    model, tokens = tiny(), repeated()
    means = I.mean_z(model, tokens)
    assert sorted(means) == [0, 1] and means[0].shape == (tokens.shape[1], 4, 8)


def test_k_composition_scores_agree_with_the_single_head_formula():
    model = tiny()
    scores = I.k_composition_scores(model, 0, 1)
    assert scores.shape == (4, 4) and ((scores > 0) & (scores <= 1)).all()
    W_OV = model.W_V[0, 2] @ model.W_O[0, 2]
    W_QK = model.W_Q[1, 3] @ model.W_K[1, 3].T
    assert scores[2, 3].item() == pytest.approx(I.composition_score(W_OV, W_QK.T).item(), rel=1e-5)


def test_the_factored_composition_exercise_agrees_with_the_package():
    """Exercise 1.15's factored Q/K/V scores: its K row is induction.k_composition_scores; Q and V match dense."""
    from digsite.factored import FactoredMatrix
    from digsite.solutions.ch01 import composition_scores

    model = tiny()
    with torch.no_grad():
        OV = FactoredMatrix(model.W_V, model.W_O)
        QK = FactoredMatrix(model.W_Q, model.W_K.transpose(-1, -2))
        scores = composition_scores(OV[0], QK[1], OV[1])
        torch.testing.assert_close(scores[1], I.k_composition_scores(model, 0, 1))
        dense_ov, dense_qk = OV.full(), QK.full()
        q_comp = I.composition_score(dense_ov[0, 2], dense_qk[1, 3])
        v_comp = I.composition_score(dense_ov[0, 2], dense_ov[1, 3])
    assert scores[0, 2, 3].item() == pytest.approx(q_comp.item(), rel=1e-4)
    assert scores[2, 2, 3].item() == pytest.approx(v_comp.item(), rel=1e-4)


def test_composition_score_is_one_for_aligned_rank_one_matrices():
    u, v = torch.randn(6, 1), torch.randn(6, 1)
    left, right = u @ v.T, v @ u.T
    assert I.composition_score(left, right).item() == pytest.approx(1.0, rel=1e-5)


class WordTokenizer:
    """Just enough of a tokenizer for HookedModel.to_tokens / to_str_tokens on the tiny model."""

    bos_token_id, eos_token_id, pad_token_id = 1, 1, 0

    def encode(self, text, add_special_tokens=False):
        return [3 + sum(map(ord, w)) % 27 for w in text.split()]

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


def _html(explorer: widgets.AttentionExplorer) -> str:
    outputs = explorer.output.outputs
    assert len(outputs) == 1
    return outputs[0]["data"]["text/html"]


def test_attention_explorer_redraws_when_the_layer_or_prompt_changes():
    model = HookedModel(tiny().model, WordTokenizer())
    explorer = widgets.attention_explorer(model, "a b c a b c")
    first = _html(explorer)
    assert "L0H0" in first and "L1H0" not in first
    assert explorer.summary.value.startswith("previous-token score: L0H0")
    explorer.layer.value = 1
    second = _html(explorer)
    assert "L1H3" in second and "L0H0" not in second
    assert explorer.summary.value.startswith("previous-token score: L1H0")
    explorer.prompt.value = "x y z w"
    third = _html(explorer)
    assert third != second and "L1H0" in third
    assert explorer.summary.value != ""


def test_the_shipped_organism_has_the_heads_chapter_1_names():
    """Chapter 1's prose names previous-token head 0.1 and induction heads 1.2 and 1.3: keep it true."""
    from digsite.models import load_model
    from digsite.organisms.data import repeated_tokens

    model = load_model("induction", device="cpu")
    tokens = repeated_tokens(batch=16, seg_len=20, seed=0)
    prev = I.head_scores(model, tokens, I.previous_token_score)
    ind = I.head_scores(model, tokens, partial(I.induction_score, seg_len=20))
    assert prev.flatten().argmax().item() == 1 and prev[0, 1] > 0.9
    assert sorted(ind.flatten().topk(2).indices.tolist()) == [6, 7] and (ind[1, 2:] > 0.8).all()


def test_the_shipped_organism_reads_the_same_from_its_weights():
    """Chapter 1's weights part: only 1.2 and 1.3 copy, and 0.1 tops K-composition into both."""
    from digsite.factored import FactoredMatrix
    from digsite.models import load_model
    from digsite.solutions.ch01 import composition_scores, copying_scores, full_ov_circuit

    model = load_model("induction", device="cpu")
    with torch.no_grad():
        eig = torch.tensor(
            [
                [float(copying_scores(full_ov_circuit(model.W_E, model.W_V[l, h], model.W_O[l, h], model.W_U))[1])]
                for l in range(2)
                for h in range(4)
            ]
        ).flatten()
        OV, QK = FactoredMatrix(model.W_V, model.W_O), FactoredMatrix(model.W_Q, model.W_K.transpose(-1, -2))
        k_comp = composition_scores(OV[0], QK[1], OV[1])[1]
    assert (eig[6:] > 0.9).all() and (eig[:6] < 0).all()
    assert k_comp[:, 2:].argmax(dim=0).tolist() == [1, 1]
