"""SAEs in SAELens's on-disk format: load a published SAE into digsite, export the course's.

SAELens (the community's SAE library) saves an SAE as a folder holding `cfg.json` and
`sae_weights.safetensors` with `W_enc` (d_in, d_sae), `W_dec` (d_sae, d_in), `b_enc`,
`b_dec` and, for JumpReLU, `threshold` (d_sae). Its config comes in two layouts: the
current one (`architecture` = "standard" | "topk" | "jumprelu", with `meta.model_name`
and `meta.hook_name`) and the older flat one (`model_name`, `hook_name`,
`activation_fn_str`, `activation_fn_kwargs.k`). Both load.

digsite's SAE decodes with unit-norm decoder rows. A published ReLU or JumpReLU SAE whose
rows are not unit norm is converted exactly by moving each row's norm into the encoder
(and the threshold); a TopK SAE cannot be (scaling changes which latents are the top k),
so that case is an error rather than a silently different SAE. Exported SAEs carry
unit-norm rows, so other tools read what digsite computes with.

Hook names: SAELens names hook points in TransformerLens's vocabulary, which digsite
shares (`blocks.8.hook_resid_pre`), so a published SAE's `hook_name` is used as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .sae import SAE, SAEConfig

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_saelens", "save_saelens"]

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
ARCHITECTURES = ("standard", "topk", "jumprelu")


def _architecture(cfg: dict[str, Any]) -> tuple[str, int | None]:
    """(architecture, k) from either config layout."""
    arch = cfg.get("architecture")
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if arch in (None, "standard") and cfg.get("activation_fn_str") == "topk":
        arch = "topk"  # the older layout says TopK through its activation function
    arch = arch or "standard"
    if arch not in ARCHITECTURES:
        raise NotImplementedError(
            f"SAELens architecture {arch!r} is not supported; digsite loads {', '.join(ARCHITECTURES)}."
        )
    k = cfg.get("k", kwargs.get("k"))
    if arch == "topk" and k is None:
        raise ValueError("A TopK SAE's cfg.json must give k (as `k` or `activation_fn_kwargs.k`).")
    return arch, (int(k) if arch == "topk" else None)


def load_saelens(folder: str | Path) -> SAE:
    """An SAE saved in SAELens's format (a folder with cfg.json and sae_weights.safetensors), in eval mode."""
    folder = Path(folder)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not an SAELens SAE folder: it has no {' or '.join(missing)}.")
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    meta = cfg.get("meta") or {}
    arch, k = _architecture(cfg)
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise NotImplementedError(
            f"This SAE normalises its inputs ({cfg['normalize_activations']!r}); digsite reads raw activations. "
            "Fold the scaling into the weights in SAELens first (fold_activation_norm_scaling_factor)."
        )
    weights = {name: tensor.float() for name, tensor in load_file(str(folder / WEIGHTS_FILE)).items()}
    W_enc, W_dec, b_enc, b_dec = (weights[n] for n in ("W_enc", "W_dec", "b_enc", "b_dec"))
    d_in, d_sae = W_enc.shape
    if W_dec.shape != (d_sae, d_in) or (cfg.get("d_in", d_in), cfg.get("d_sae", d_sae)) != (d_in, d_sae):
        raise ValueError(f"{folder}: W_enc {tuple(W_enc.shape)} and W_dec {tuple(W_dec.shape)} do not fit cfg.json.")
    if not cfg.get("apply_b_dec_to_input", True):
        b_enc = b_enc + b_dec @ W_enc  # digsite always subtracts b_dec first: fold it back into b_enc
    norms = W_dec.norm(dim=-1)
    threshold = weights.get("threshold")
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        if arch == "topk":
            raise NotImplementedError(
                "This TopK SAE's decoder rows are not unit norm, and digsite decodes with unit-norm rows: "
                "rescaling would change which latents are the top k, so it cannot be converted exactly."
            )
        # Latent i's activation times row i is unchanged when the row's norm moves into the encoder.
        W_dec, W_enc, b_enc = W_dec / norms[:, None], W_enc * norms, b_enc * norms
        threshold = None if threshold is None else threshold * norms
    sae = SAE(
        SAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            k=k,
            jumprelu=arch == "jumprelu",
            model_name=meta.get("model_name", cfg.get("model_name")) or "",
            hook_name=meta.get("hook_name", cfg.get("hook_name")) or "",
        )
    )
    state = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
    if arch == "jumprelu":
        if threshold is None:
            raise ValueError(f"{folder}: a JumpReLU SAE needs a `threshold` tensor in {WEIGHTS_FILE}.")
        state["threshold"] = threshold
    sae.load_state_dict(state)
    return sae.eval()


def save_saelens(sae: SAE, folder: str | Path, hook_layer: int | None = None) -> Path:
    """Write `sae` as an SAELens folder (current config layout) that other tools load as is; return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = sae.cfg
    arch = "jumprelu" if c.jumprelu else ("topk" if c.k is not None else "standard")
    weights = {
        "W_enc": sae.W_enc,
        "W_dec": sae.W_dec_normalized,  # what digsite computes with
        "b_enc": sae.b_enc,
        "b_dec": sae.b_dec,
    }
    if c.jumprelu:
        weights["threshold"] = sae.threshold
    save_file({k: v.detach().float().contiguous().cpu() for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
    if hook_layer is None and c.hook_name.startswith("blocks."):
        hook_layer = int(c.hook_name.split(".")[1])
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "meta": {"model_name": c.model_name, "hook_name": c.hook_name, "hook_layer": hook_layer, "prepend_bos": True},
    }
    if c.k is not None:
        cfg["k"] = c.k
    (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return folder
