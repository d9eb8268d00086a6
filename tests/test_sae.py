"""Sparse autoencoders: the model, metrics, training, dashboards, the browser, steering, the shipped SAE."""

import hashlib
import json
from functools import lru_cache

import pytest
import torch

from digsite.latents import dashboard_html, label_latents, steering_hook, top_activations
from digsite.organisms.labels import ioi_roles, token_labels
from digsite.sae import (
    SAE,
    SAE_DIR,
    SAEConfig,
    auxk_loss,
    load_sae,
    resample_dead_latents,
    sae_card,
    sae_loss,
    save_sae,
    topk_activation,
    train_sae,
)
from digsite.sae_eval import (
    ce_losses,
    dead_and_dense,
    evaluate_sae,
    explained_variance,
    l0_per_token,
    latent_frequencies,
)
from digsite.widgets import latent_browser


@lru_cache(maxsize=1)
def _tiny():
    """A random 2-layer GPT-2 with the toy-language tokenizer, hooked."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from digsite.hooks import HookedModel
    from digsite.organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=2, n_head=2, n_inner=32, bos_token_id=1)
    return HookedModel(GPT2LMHeadModel(cfg).eval(), tok)


def test_decoder_rows_have_unit_norm_and_shapes():
    sae = SAE(SAEConfig(d_in=8, d_sae=32))
    with torch.no_grad():
        sae.W_dec.mul_(5)
    assert torch.allclose(sae.W_dec_normalized.norm(dim=1), torch.ones(32))
    f, x_hat = sae(torch.randn(3, 4, 8))
    assert f.shape == (3, 4, 32) and x_hat.shape == (3, 4, 8) and (f >= 0).all()


def test_topk_keeps_exactly_k_per_token():
    f = topk_activation(torch.randn(10, 50) + 5, 7)
    assert ((f != 0).sum(-1) == 7).all()
    sae = SAE(SAEConfig(d_in=8, d_sae=32, k=4))
    assert l0_per_token(sae(torch.randn(20, 8))[0]) <= 4


def test_metrics_on_known_values():
    f = torch.zeros(4, 10)
    f[0, :3] = 1.0
    f[1, 3] = 2.0
    assert l0_per_token(f).item() == 1.0
    freq = latent_frequencies(f)
    assert freq[0].item() == 0.25 and freq[9].item() == 0.0
    assert dead_and_dense(freq, dense_threshold=0.2) == pytest.approx((0.6, 0.4))
    x = torch.randn(100, 6)
    assert explained_variance(x, x).item() == 1.0
    assert abs(explained_variance(x, x.mean(0, keepdim=True).expand_as(x)).item()) < 1e-6


def test_training_reduces_loss_and_resampling_revives_dead_latents():
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(24, 8, generator=g)
    codes = torch.rand(4000, 24, generator=g) * (torch.rand(4000, 24, generator=g) < 0.1)
    acts = codes @ dirs
    sae = SAE(SAEConfig(d_in=8, d_sae=32, k=4))
    before = evaluate_sae(sae, acts)
    history = train_sae(sae, acts, steps=300, batch_size=256, lr=3e-3, progress=False)
    after = evaluate_sae(sae, acts)
    assert after["mse"] < before["mse"] and after["explained_variance"] > 0.6
    assert history["loss"][-1] < history["loss"][0]
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:5] = True
    w_before = sae.W_dec[:5].clone()
    assert resample_dead_latents(sae, acts[:256], dead, g) == 5
    assert not torch.allclose(sae.W_dec[:5], w_before) and torch.equal(sae.b_enc[:5], torch.zeros(5))


def test_ce_losses_zero_ablation_is_the_floor_and_hooks_are_removed():
    model = _tiny()
    tokens = model.to_tokens(["Mary and John went to the store", "a cat is an animal and a dog is an"])[:, :7]
    sae = SAE(SAEConfig(d_in=16, d_sae=32, k=4, hook_name="blocks.1.hook_resid_pre"))
    clean, spliced, zero = ce_losses(model, sae, tokens, sae.cfg.hook_name)
    assert clean != zero and clean != spliced
    assert torch.allclose(model(tokens, return_type="loss"), torch.tensor(clean))


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    sae = SAE(SAEConfig(d_in=8, d_sae=16, k=2, model_name="m", hook_name="h"), seed=3)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 16)[:, None])  # training lets the raw rows drift off unit norm
    save_sae(sae, tmp_path / "x", {"metrics": {"l0": 2}})
    monkeypatch.setattr("digsite.sae.SAE_DIR", tmp_path)
    loaded = load_sae("x")
    assert loaded.cfg == sae.cfg
    saved = load_file(str(tmp_path / "x.safetensors"))["W_dec"]
    torch.testing.assert_close(saved.norm(dim=-1), torch.ones(16))  # saved as the SAE computes with it
    x = torch.randn(32, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=0)  # the same function
    assert sae_card("x")["metrics"] == {"l0": 2}
    assert sae_card("x")["sha256"] == hashlib.sha256((tmp_path / "x.safetensors").read_bytes()).hexdigest()
    with pytest.raises(KeyError, match="Shipped: x"):
        load_sae("nope")


def test_ioi_roles_and_labels_follow_the_grammar():
    words = "When Mary and John went to the store , John gave a drink to Mary .".split()
    roles = ioi_roles(words)
    assert (
        roles[1] == "IO" and roles[3] == "S1" and roles[9] == "S2" and roles[13] == "END" and roles[14] == "IO answer"
    )
    labels = token_labels("a cat is an animal . three plus four is seven".split())
    assert (
        labels[1] == "animal (member)"
        and labels[4] == "category word"
        and labels[6] == "number"
        and labels[2] == "'is'"
    )


def test_label_latents_finds_a_pure_latent():
    labels = [["name", "'the'", "name", "number"]] * 10
    latents = torch.zeros(10, 4, 2)
    latents[:, 0, 0] = latents[:, 2, 0] = 1.0  # latent 0 fires on names only
    latents[:, :, 1] = 1.0  # latent 1 fires everywhere
    found = label_latents(latents, labels, top_k=20, min_share=0.8)
    assert found == [(0, "name", 1.0)]


def test_top_activations_finds_the_position():
    acts = torch.zeros(3, 5)
    acts[2, 4], acts[0, 1] = 3.0, 2.0
    seq, pos, val = top_activations(acts, 2)
    assert seq.tolist() == [2, 0] and pos.tolist() == [4, 1] and val.tolist() == [3.0, 2.0]


def test_latent_browser_redraws_when_the_index_changes():
    model = _tiny()
    tokens = model.to_tokens(["Mary and John went to the store , John gave a drink to Mary"] * 2)
    latents = torch.rand(2, tokens.shape[1], 6)
    browser = latent_browser(model, tokens, latents, torch.randn(6, 16), latent=0)
    index, view = browser.children
    first = view.value
    assert "Latent 0" in first and "Promotes" in first
    index.value = 3
    assert "Latent 3" in view.value and view.value != first
    assert "<script" not in view.value  # pure HTML: renders offline, in any widget
    assert "Latent 5" in dashboard_html(model, tokens, latents, 5, torch.randn(6, 16))


def test_steering_adds_a_unit_direction_everywhere():
    d = torch.tensor([3.0, 4.0])
    out = steering_hook(d, 10.0)(torch.zeros(1, 3, 2), None)
    assert torch.allclose(out, torch.tensor([6.0, 8.0]).expand(1, 3, 2))


# --- the shipped SAE ------------------------------------------------------------------------


def test_shipped_sae_card_and_size():
    card = sae_card("toylang")
    assert card["config"]["model_name"] == "toylang"
    assert card["command"].startswith("python -m digsite.organisms train sae-toylang")
    assert (SAE_DIR / "toylang.safetensors").stat().st_size < 3 * 2**20
    json.dumps(card)
    assert card["sha256"] == hashlib.sha256((SAE_DIR / "toylang.safetensors").read_bytes()).hexdigest()


def test_shipped_sae_decoder_rows_are_saved_with_unit_norm():
    """Another tool reading the file as shipped must get the decoder the SAE computes with."""
    from safetensors.torch import load_file

    norms = load_file(str(SAE_DIR / "toylang.safetensors"))["W_dec"].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_shipped_sae_meets_the_targets():
    """The issue's targets, measured on fresh toy-language text: EV >= 0.85 at L0 <= 32, dead <= 10%, CE recovered >= 85%."""
    from digsite import load_model
    from digsite.sae import collect_activations, toylang_tokens

    sae = load_sae("toylang")
    model = load_model("toylang", device="cpu")
    tokens = toylang_tokens(model, 300, seed=4_000_000)
    m = evaluate_sae(sae, collect_activations(model, tokens, sae.cfg.hook_name), model, tokens)
    assert m["l0"] <= 32
    assert m["explained_variance"] >= 0.85
    assert m["dead_fraction"] <= 0.10
    assert m["ce_loss_recovered"] >= 0.85


def test_the_organisms_command_trains_the_sae(tmp_path, capsys):
    """One training command for everything shipped: `python -m digsite.organisms train sae-toylang --quick`."""
    from digsite.organisms.__main__ import main
    from digsite.organisms.sae_recipe import SAE_RECIPES

    assert main(["train", "sae-toylang", "--quick", "--out", str(tmp_path)]) == 0
    card = json.loads((tmp_path / "toylang.json").read_text())
    assert card["command"].endswith("--quick") and card["recipe"]["d_sae"] == SAE_RECIPES["sae-toylang"].quick().d_sae
    assert {"explained_variance", "l0", "ce_loss_recovered"} <= set(card["metrics"])
    assert (tmp_path / "toylang.safetensors").exists()


def test_resampling_resets_adam_moments_of_the_resampled_latents_only():
    g = torch.Generator().manual_seed(1)
    acts = torch.randn(512, 8, generator=g)
    sae = SAE(SAEConfig(d_in=8, d_sae=16, l1_coeff=0.01))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    f, x_hat = sae(acts)
    sae_loss(acts, f, x_hat, 0.01)[0].backward()
    opt.step()
    before = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in (sae.W_dec, sae.W_enc, sae.b_enc, sae.b_dec)}
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[2, 5, 11]] = True
    assert resample_dead_latents(sae, acts[:64], dead, g, opt) == 3
    for key in ("exp_avg", "exp_avg_sq"):
        for p, rows in ((sae.W_dec, lambda t: t), (sae.b_enc, lambda t: t), (sae.W_enc, lambda t: t.T)):
            assert (rows(opt.state[p][key])[dead] == 0).all()
            assert torch.equal(rows(opt.state[p][key])[~dead], rows(before[p][key])[~dead])
        assert torch.equal(opt.state[sae.b_dec][key], before[sae.b_dec][key])  # b_dec belongs to no latent


def test_the_course_training_loop_matches_the_package_trainer():
    from digsite.solutions.ch04 import train_sae_loop

    g = torch.Generator().manual_seed(2)
    acts = torch.rand(400, 12, generator=g) @ torch.randn(12, 6, generator=g)
    sae = SAE(SAEConfig(d_in=6, d_sae=20, l1_coeff=0.05), seed=4)
    start = {name: getattr(sae, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    mine = train_sae_loop(start, acts, 0.05, 40, 32, 5e-3, 3)
    train_sae(sae, acts, steps=40, batch_size=32, lr=5e-3, seed=3, progress=False)
    for name, tensor in mine.items():
        torch.testing.assert_close(tensor, getattr(sae, name).detach(), atol=1e-5, rtol=1e-5)


def test_auxk_loss_uses_only_dead_latents_and_revives_training():
    g = torch.Generator().manual_seed(3)
    pre, W_dec, residual = (
        torch.randn(10, 16, generator=g),
        torch.randn(16, 5, generator=g),
        torch.randn(10, 5, generator=g),
    )
    dead = torch.zeros(16, dtype=torch.bool)
    assert auxk_loss(pre, W_dec, residual, dead, 4).item() == 0.0
    dead[:3] = True
    pre_live_changed = pre.clone()
    pre_live_changed[:, 3:] += 100.0  # live latents never take part
    assert torch.equal(auxk_loss(pre, W_dec, residual, dead, 8), auxk_loss(pre_live_changed, W_dec, residual, dead, 8))
    codes = torch.rand(3000, 24, generator=g) * (torch.rand(3000, 24, generator=g) < 0.1)
    acts = codes @ torch.randn(24, 8, generator=g)
    sae = SAE(SAEConfig(d_in=8, d_sae=64, k=2))
    history = train_sae(sae, acts, steps=120, batch_size=128, lr=3e-3, aux_k=8, dead_after=10, progress=False)
    assert len(history["dead"]) == 120 and 0.0 <= min(history["dead"]) <= max(history["dead"]) <= 1.0
    assert torch.isfinite(torch.tensor(history["loss"])).all()
