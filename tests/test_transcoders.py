"""Transcoders: the module, training, splicing, the shipped set, its card and its gate."""

import json
from functools import lru_cache

import pytest
import torch

from digsite.transcoders import (
    THRESHOLDS,
    TranscoderConfig,
    Transcoders,
    check_thresholds,
    load_transcoders,
    mlp_input,
    splice_hooks,
    transcoder_card,
    transcoder_folder,
    transcoder_loss,
)


@lru_cache(maxsize=1)
def _model():
    from digsite import load_model

    return load_model("toylang", device="cpu")


def test_forward_shapes_sparsity_and_unit_decoder():
    tc = Transcoders(TranscoderConfig(n_layers=2, d_model=8, d_tc=32, k=5), seed=1)
    with torch.no_grad():
        tc.W_dec.mul_(3)
        tc.W_skip.normal_()
    x = torch.randn(3, 4, 8)
    y_before = tc(x, 1)[1]
    tc.normalize_decoder()
    f, y = tc(x, 1)
    assert f.shape == (3, 4, 32) and y.shape == (3, 4, 8)
    assert ((f > 0).sum(-1) <= 5).all() and (f >= 0).all()
    assert torch.allclose(tc.W_dec.norm(dim=-1), torch.ones(2, 32))
    assert torch.allclose(y, y_before, atol=1e-4)  # rescaling encoder and decoder together changes nothing
    assert torch.allclose(y, f @ tc.W_dec[1] + tc.b_dec[1] + x @ tc.W_skip[1])


def test_loss_is_normalised_by_the_variance():
    y = torch.randn(100, 4) * 3 + 1
    assert torch.isclose(transcoder_loss(y, y.mean(0).expand_as(y)), torch.tensor(1.0))
    assert transcoder_loss(y, y) == 0


def test_mlp_input_is_what_the_mlp_reads():
    model = _model()
    seen = {}
    mlp = model.model.transformer.h[1].mlp
    handle = mlp.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        _, cache = model.run_with_cache("a cat is an", names_filter="blocks.1.hook_resid_mid")
    finally:
        handle.remove()
    assert torch.allclose(mlp_input(model, cache["blocks.1.hook_resid_mid"], 1), seen["x"], atol=1e-5)


def test_shipped_transcoders_card_size_and_hash():
    import hashlib

    card = transcoder_card("toylang")
    weights = transcoder_folder("toylang") / "transcoders.safetensors"
    assert weights.stat().st_size < 5_000_000
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["sha256"]
    assert card["sha256"] in (transcoder_folder("toylang") / "card.md").read_text()
    assert check_thresholds(card["metrics"]) == []
    tc = load_transcoders("toylang")
    assert not any(p.requires_grad for p in tc.parameters())
    assert torch.allclose(tc.W_dec.norm(dim=-1), torch.ones_like(tc.W_dec[..., 0]), atol=1e-5)


def test_splicing_keeps_bos_and_leaves_no_hooks():
    model = _model()
    tc = load_transcoders("toylang")
    tokens = model.to_tokens(["a cat is an animal", "Paris is in France . a dog is an"])
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.model.modules())
    _, clean = model.run_with_cache(tokens, names_filter="blocks.2.hook_mlp_out")
    with model.hooks(splice_hooks(model, tc, layers=[2])):
        _, spliced = model.run_with_cache(tokens, names_filter=["blocks.2.hook_mlp_out", "blocks.2.hook_resid_mid"])
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.model.modules())
    assert after == before
    y, y_hat = clean["blocks.2.hook_mlp_out"], spliced["blocks.2.hook_mlp_out"]
    assert torch.equal(y[:, 0], y_hat[:, 0])
    x = mlp_input(model, spliced["blocks.2.hook_resid_mid"], 2)
    assert torch.allclose(y_hat[:, 1:], tc(x, 2)[1][:, 1:], atol=1e-5)


def test_the_gate_passes_the_shipped_set_and_fails_a_broken_one(tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    from digsite.organisms.__main__ import main

    assert main(["evaluate", "toylang-transcoders", "--json"]) == 0
    good = json.loads(capsys.readouterr().out)["toylang-transcoders"]
    assert good["failures"] == [] and set(THRESHOLDS) <= set(good)
    assert good["sha256"] == transcoder_card("toylang")["sha256"]
    broken = tmp_path / "broken"
    shutil.copytree(transcoder_folder("toylang"), broken)
    w = load_file(str(broken / "transcoders.safetensors"))
    w["W_dec"] = w["W_dec"] * 0.2
    save_file(w, str(broken / "transcoders.safetensors"))
    assert main(["evaluate", "toylang-transcoders", "--path", str(broken), "--json"]) == 1
    bad = json.loads(capsys.readouterr().out)["toylang-transcoders"]
    assert any("ce_recovered" in f or "fve" in f for f in bad["failures"])


def test_quick_training_writes_a_loadable_set(tmp_path):
    from digsite.organisms.__main__ import main

    assert main(["train", "toylang-transcoders", "--quick", "--out", str(tmp_path)]) == 0
    card = transcoder_card("toylang", tmp_path)
    assert card["recipe"]["d_tc"] == 64 and "--quick" in card["command"]
    tc = load_transcoders("toylang", tmp_path)
    assert tc.cfg.d_tc == 64 and (tmp_path / "card.md").exists()
    from digsite.organisms import organism_names

    assert "toylang-transcoders" not in organism_names()  # not mistaken for a model checkpoint
    with pytest.raises(KeyError, match="No shipped transcoders"):
        transcoder_card("gpt2")
