"""SAELens-format SAEs: published layouts load exactly, the course's SAEs export and round-trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from digsite.sae import SAE, SAEConfig, load_sae
from digsite.saelens import load_saelens, save_saelens

D_IN, D_SAE = 12, 40


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(7, D_IN, generator=torch.Generator().manual_seed(seed)) * 2


def _published(folder, arch: str, layout: str = "current", apply_b_dec: bool = True, k: int = 5) -> dict:
    """Write an SAELens folder with random weights (decoder rows NOT unit norm), return the weights."""
    g = torch.Generator().manual_seed(1)
    w = {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g) * 0.5,
        "W_dec": torch.randn(D_SAE, D_IN, generator=g) * torch.rand(D_SAE, 1, generator=g) * 2,
        "b_enc": torch.randn(D_SAE, generator=g) * 0.3,
        "b_dec": torch.randn(D_IN, generator=g),
    }
    if arch == "topk":
        w["W_dec"] = w["W_dec"] / w["W_dec"].norm(dim=-1, keepdim=True)
    if arch == "jumprelu":
        w["threshold"] = torch.rand(D_SAE, generator=g) * 0.5
    folder.mkdir(parents=True, exist_ok=True)
    save_file(w, str(folder / "sae_weights.safetensors"))
    if layout == "current":
        cfg = {
            "architecture": arch,
            "d_in": D_IN,
            "d_sae": D_SAE,
            "apply_b_dec_to_input": apply_b_dec,
            "normalize_activations": "none",
            "meta": {"model_name": "gpt2", "hook_name": "blocks.3.hook_resid_pre"},
        }
        if arch == "topk":
            cfg["k"] = k
    else:  # the older flat layout
        cfg = {
            "d_in": D_IN,
            "d_sae": D_SAE,
            "model_name": "gpt2",
            "hook_name": "blocks.3.hook_resid_pre",
            "apply_b_dec_to_input": apply_b_dec,
            "activation_fn_str": "topk" if arch == "topk" else "relu",
            "activation_fn_kwargs": {"k": k} if arch == "topk" else {},
        }
        if arch == "jumprelu":
            cfg["architecture"] = "jumprelu"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return w


def _saelens_reconstruction(w: dict, arch: str, x: torch.Tensor, apply_b_dec: bool = True, k: int = 5) -> torch.Tensor:
    """SAELens's forward pass, written independently of digsite: raw weights, as published."""
    pre = (x - w["b_dec"] * apply_b_dec) @ w["W_enc"] + w["b_enc"]
    if arch == "standard":
        f = torch.relu(pre)
    elif arch == "jumprelu":
        f = torch.relu(pre) * (pre > w["threshold"])
    else:
        top = pre.topk(k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    return f @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("layout", ["current", "flat"])
@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu"])
def test_a_published_sae_computes_what_saelens_computes(tmp_path, arch, layout):
    w = _published(tmp_path / "sae", arch, layout)
    sae = load_saelens(tmp_path / "sae")
    assert sae.cfg.hook_name == "blocks.3.hook_resid_pre" and sae.cfg.model_name == "gpt2"
    assert (sae.cfg.k is not None) == (arch == "topk") and sae.cfg.jumprelu == (arch == "jumprelu")
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(sae(x)[1], _saelens_reconstruction(w, arch, x), atol=1e-5, rtol=1e-5)


def test_b_dec_not_applied_to_the_input_is_folded_exactly(tmp_path):
    w = _published(tmp_path / "sae", "standard", apply_b_dec=False)
    with torch.no_grad():
        got = load_saelens(tmp_path / "sae")(_x())[1]
    torch.testing.assert_close(
        got, _saelens_reconstruction(w, "standard", _x(), apply_b_dec=False), atol=1e-5, rtol=1e-5
    )


def test_a_topk_sae_without_unit_decoder_rows_is_refused(tmp_path):
    _published(tmp_path / "sae", "topk")
    weights = tmp_path / "sae" / "sae_weights.safetensors"
    from safetensors.torch import load_file

    w = load_file(str(weights))
    w["W_dec"] = w["W_dec"] * 3
    save_file(w, str(weights))
    with pytest.raises(NotImplementedError, match="not unit norm"):
        load_saelens(tmp_path / "sae")


def test_bad_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cfg.json or sae_weights.safetensors"):
        load_saelens(tmp_path)
    _published(tmp_path / "gated", "standard")
    cfg = json.loads((tmp_path / "gated" / "cfg.json").read_text())
    (tmp_path / "gated" / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(NotImplementedError, match="'gated' is not supported"):
        load_saelens(tmp_path / "gated")


@pytest.mark.parametrize("kind", [{"k": 6}, {"k": None}, {"jumprelu": True}])
def test_digsite_saes_round_trip(tmp_path, kind):
    sae = SAE(
        SAEConfig(d_in=D_IN, d_sae=D_SAE, hook_name="blocks.1.hook_resid_pre", model_name="toylang", **kind), seed=3
    )
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    back = load_saelens(save_saelens(sae, tmp_path / "out"))
    x = _x(2)
    with torch.no_grad():
        for a, b in zip(sae(x), back(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    cfg = json.loads((tmp_path / "out" / "cfg.json").read_text())
    assert cfg["meta"] == {
        "model_name": "toylang",
        "hook_name": "blocks.1.hook_resid_pre",
        "hook_layer": 1,
        "prepend_bos": True,
    }


def test_the_shipped_sae_exports_what_it_computes_with(tmp_path):
    sae = load_sae("toylang")
    from safetensors.torch import load_file

    save_saelens(sae, tmp_path / "toylang")
    w = load_file(str(tmp_path / "toylang" / "sae_weights.safetensors"))
    norms = w["W_dec"].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    x = torch.randn(5, sae.cfg.d_in, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # another tool, reading the file as is, reconstructs what digsite does
        torch.testing.assert_close(_saelens_reconstruction(w, "topk", x, k=sae.cfg.k), sae(x)[1], atol=1e-5, rtol=1e-5)
