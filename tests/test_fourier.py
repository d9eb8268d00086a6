"""digsite.fourier: the Fourier basis of Z_p, projections, key frequencies, ablation, the tiny trainer."""

import json
import math

import pytest
import torch

from digsite import fourier as F
from digsite.organisms import organism_names

P = 13


def _signal(p: int, k: int, phase: float = 0.3) -> torch.Tensor:
    x = torch.arange(p, dtype=torch.float32)
    return torch.cos(2 * math.pi * k * x / p + phase)


def test_basis_is_orthonormal_with_named_rows():
    for p in (7, 13, 113):
        basis = F.fourier_basis(p)
        assert basis.shape == (p, p)
        torch.testing.assert_close(basis @ basis.T, torch.eye(p), atol=1e-5, rtol=0)
        assert len(F.basis_labels(p)) == p
    labels = F.basis_labels(P)
    assert labels[:3] == ["const", "cos 1", "sin 1"] and labels[-1] == f"sin {P // 2}"
    assert F.frequency_rows(3) == (5, 6) and labels[5] == "cos 3" and labels[6] == "sin 3"
    with pytest.raises(ValueError):
        F.frequency_rows(0)


def test_basis_rows_are_cos_and_sin():
    basis = F.fourier_basis(P)
    x = torch.arange(P, dtype=torch.float32)
    torch.testing.assert_close(basis[5], torch.cos(2 * math.pi * 3 * x / P) * math.sqrt(2 / P), atol=1e-6, rtol=0)
    torch.testing.assert_close(basis[6], torch.sin(2 * math.pi * 3 * x / P) * math.sqrt(2 / P), atol=1e-6, rtol=0)
    torch.testing.assert_close(basis[0], torch.full((P,), 1 / math.sqrt(P)))


def test_projection_finds_the_frequency_and_inverts():
    basis = F.fourier_basis(P)
    W = torch.stack([_signal(P, 4), 2 * _signal(P, 2, 1.0), torch.ones(P)], dim=1)  # (p, 3)
    coeffs = F.project_onto_basis(W, basis)
    assert coeffs.shape == (P, 3)
    torch.testing.assert_close(basis.T @ coeffs, W, atol=1e-5, rtol=0)
    norms = F.frequency_norms(coeffs)
    assert norms.shape == (P // 2,)
    assert F.key_frequencies(coeffs, 2) == [2, 4]
    assert F.key_frequencies(coeffs, 1) == [2]


def test_fourier_2d_of_cos_a_plus_b():
    basis = F.fourier_basis(P)
    a = torch.arange(P, dtype=torch.float32)
    acts = torch.cos(2 * math.pi * 5 * (a[:, None] + a[None, :]) / P)[..., None]  # (p, p, 1)
    coeffs = F.fourier_2d(acts, basis)[..., 0]
    big = (coeffs.abs() > 1e-4).nonzero().tolist()
    c, s = F.frequency_rows(5)
    # cos(w(a+b)) = cos wa cos wb - sin wa sin wb
    assert sorted(map(tuple, big)) == [(c, c), (s, s)]
    assert coeffs[c, c] > 0 > coeffs[s, s]


def test_neuron_frequencies_recognises_a_single_frequency_neuron():
    basis = F.fourier_basis(P)
    a = torch.arange(P, dtype=torch.float32)
    wa = 2 * math.pi * a / P
    neuron_3 = torch.relu(torch.cos(3 * wa)[:, None] + torch.cos(3 * wa)[None, :])
    noise = torch.randn(P, P, generator=torch.Generator().manual_seed(0))
    freq, frac = F.neuron_frequencies(torch.stack([neuron_3, noise], dim=-1), basis)
    assert freq[0] == 3 and frac[0] > 0.9  # the ReLU adds a little of the harmonics 2k, 3k
    assert frac[1] < 0.5


def test_cos_logit_terms_peak_at_the_answer():
    terms = F.cos_logit_terms(P, [1, 4])
    assert terms.shape == (2, P, P, P)
    a, b = 5, 11
    assert terms[:, a, b, (a + b) % P].allclose(torch.ones(2))
    assert terms[1, a, b].argmax() == (a + b) % P
    assert math.isclose(terms[1, 2, 3, 4].item(), math.cos(2 * math.pi * 4 * 1 / P), abs_tol=1e-6)


def test_ablation_removes_exactly_the_named_frequencies():
    basis = F.fourier_basis(P)
    W = torch.stack([_signal(P, 1) + _signal(P, 3, 0.7) + 0.5, _signal(P, 6)], dim=1)
    out = F.ablate_frequencies(W, basis, [3])
    expected = torch.stack([_signal(P, 1) + 0.5, _signal(P, 6)], dim=1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(F.ablate_frequencies(W, basis, []), W, atol=1e-5, rtol=0)
    everything = F.ablate_frequencies(W, basis, range(1, P // 2 + 1))
    torch.testing.assert_close(everything, W.mean(dim=0, keepdim=True).expand_as(W), atol=1e-5, rtol=0)


def test_all_pairs_is_a_major():
    tokens, labels = F.all_pairs(5)
    assert tokens.shape == (25, 3) and labels.shape == (25,)
    assert tokens[7].tolist() == [1, 2, 5] and labels[7] == 3
    assert tokens[24].tolist() == [4, 4, 5] and labels[24] == 3


@pytest.fixture(scope="module")
def tiny_run():
    return F.train_grokking(p=7, steps=30, d_model=16, log_every=10, progress=False)


def test_train_grokking_logs_curves(tiny_run):
    hist = tiny_run.history
    assert [r["step"] for r in hist] == [0, 10, 20, 29]
    assert set(hist[0]) == {"step", "train_loss", "test_loss", "train_acc", "test_acc"}
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert len(tiny_run.train_idx) + len(tiny_run.test_idx) == 49
    assert tiny_run.memorised_at(threshold=2.0) is None


def test_train_grokking_is_deterministic(tiny_run):
    again = F.train_grokking(p=7, steps=30, d_model=16, log_every=10, progress=False)
    assert again.history == tiny_run.history


def test_embedding_replacement_and_evaluation(tiny_run):
    from digsite.models import wrap

    model = wrap(tiny_run.model)
    p = 7
    plain = F.evaluate_all_pairs(model, p)
    assert 0.0 <= plain["accuracy"] <= 1.0 and plain["loss"] > 0
    same = F.evaluate_all_pairs(model, p, W_numbers=model.W_E[:p].detach())
    assert same == pytest.approx(plain, abs=1e-6)
    zero = F.evaluate_all_pairs(model, p, W_numbers=torch.zeros(p, 16))
    assert zero["loss"] != pytest.approx(plain["loss"])
    assert not model.model.transformer.wte._forward_hooks  # hooks removed afterwards


def test_history_round_trip_and_figure(tmp_path, tiny_run):
    (tmp_path / "history.json").write_text(json.dumps({"steps": 30, "config": {"p": 7}, "history": tiny_run.history}))
    loaded = F.load_history(tmp_path)
    assert loaded["history"] == tiny_run.history
    fig = F.grokking_figure(loaded["history"])
    assert len(fig.data) == 4


@pytest.mark.skipif("modadd" not in organism_names(), reason="modadd weights not bundled yet")
def test_bundled_history_has_curves():
    hist = F.load_history("modadd")
    assert hist["config"]["p"] == 113
    assert {"step", "train_loss", "test_loss", "train_acc", "test_acc"} <= set(hist["history"][0])


# --- checkpoints and progress measures --------------------------------------------------


def _planted(p: int, freqs, train: int, seed: int = 0):
    """(p*p, p) logits made of cos(w(a + b - c)) at `freqs` plus noise, and `train` random training rows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p, dtype=torch.float64)
    a, b = x.repeat_interleave(p), x.repeat(p)
    logits = 0.3 * torch.randn(p * p, p, generator=g, dtype=torch.float64)
    for k in freqs:
        logits += 4 * torch.cos(2 * math.pi * k * (a[:, None] + b[:, None] - x[None, :]) / p)
    return logits.float(), torch.randperm(p * p, generator=g)[:train]


def test_progress_losses_see_the_planted_frequencies():
    from digsite.solutions.ch05 import progress_losses

    logits, train_idx = _planted(P, [2, 5], train=60)
    restricted, excluded = progress_losses(logits, [2, 5], train_idx)
    assert restricted.shape == () and excluded.shape == ()
    assert restricted < 0.5  # the key frequencies alone carry the answer
    assert excluded > math.log(P) - 0.3  # and without them the training rows are at chance
    restricted_wrong, excluded_wrong = progress_losses(logits, [1, 3], train_idx)
    assert restricted_wrong > math.log(P) - 0.3 and excluded_wrong < 0.5
    # logits that depend on (a, b) only through a + b lose everything but each answer's mean when every
    # frequency is excluded
    g = torch.Generator().manual_seed(1)
    table = torch.randn(P, P, generator=g)  # [a + b mod p, c]
    sums = (torch.arange(P).repeat_interleave(P) + torch.arange(P).repeat(P)) % P
    _, excluded_all = progress_losses(table[sums], list(range(1, P // 2 + 1)), train_idx)
    const = table.mean(dim=0, keepdim=True).expand(len(train_idx), P)
    expected = torch.nn.functional.cross_entropy(const, sums[train_idx])
    assert excluded_all.item() == pytest.approx(expected.item(), abs=1e-4)


def _fake_organism(tmp_path, steps: dict[int, float]):
    """A copy of the modadd folder whose checkpoints.safetensors holds the final weights times a factor per step."""
    import shutil

    from safetensors.torch import save_file

    from digsite.models import load_model
    from digsite.organisms import organism_path

    folder = tmp_path / "modadd"
    shutil.copytree(organism_path("modadd"), folder, ignore=shutil.ignore_patterns(F.CHECKPOINTS_FILE))
    model = load_model("modadd", device="cpu")
    kept = {
        f"step{s}.{n}": (q.detach() * factor).half()
        for s, factor in steps.items()
        for n, q in model.model.named_parameters()
    }
    save_file(kept, str(folder / F.CHECKPOINTS_FILE), metadata={"steps": json.dumps(sorted(steps))})
    return folder, model


@pytest.mark.skipif("modadd" not in organism_names(), reason="modadd weights not bundled yet")
def test_checkpoints_load_and_fail_clearly(tmp_path):
    folder, final = _fake_organism(tmp_path, {5: 1.0, 50: 0.5})
    last = F.load_history(folder)["steps"] - 1
    assert F.checkpoint_steps(folder) == [5, 50, last]
    five = F.load_checkpoint(5, folder, device="cpu")
    tokens = F.all_pairs(113)[0][:64]
    with torch.no_grad():
        torch.testing.assert_close(five(tokens), final(tokens), atol=0.05, rtol=0.01)  # fp16 rounding only
    half = F.load_checkpoint(50, folder, device="cpu")
    torch.testing.assert_close(half.W_U, 0.5 * final.W_U, atol=1e-3, rtol=1e-2)  # the tied unembedding follows
    assert F.weight_norm(half) == pytest.approx(0.5 * F.weight_norm(final), rel=1e-3)
    with pytest.raises(ValueError, match=r"shipped steps are \[5, 50"):
        F.load_checkpoint(7, folder)
    (folder / F.CHECKPOINTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="train modadd"):
        F.checkpoint_steps(folder)


@pytest.mark.skipif("modadd" not in organism_names(), reason="modadd weights not bundled yet")
def test_shipped_checkpoints_and_progress_measures():
    from digsite.organisms.data import modadd_dataset

    steps = F.checkpoint_steps("modadd")
    assert len(steps) >= 5 and steps == sorted(steps)
    train_x, *_ = modadd_dataset(113, 0.3, seed=0)
    train_idx = F.train_rows(train_x, 113)
    first = F.progress_measures(F.load_checkpoint(steps[0], device="cpu"), 113, [14, 35], train_idx)
    last = F.progress_measures(F.load_checkpoint(steps[-1], device="cpu"), 113, [14, 35], train_idx)
    assert set(first) == {"train_loss", "test_loss", "restricted_loss", "excluded_loss", "weight_norm"}
    assert first["train_loss"] < 1 and first["test_loss"] > last["test_loss"]
    fig = F.progress_figure(steps[:1] + steps[-1:], [first, last])
    assert len(fig.data) == 5
