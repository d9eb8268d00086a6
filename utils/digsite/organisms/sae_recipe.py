"""The shipped SAEs' training recipes, trained by the organisms' one command.

    python -m digsite.organisms train sae-toylang [--out DIR] [--steps N] [--seed S] [--quick]

writes DIR/toylang.safetensors and DIR/toylang.json (config, recipe, command, metrics); DIR
defaults to runs/sae-toylang. Pass the package's `weights/saes` folder to replace the shipped
SAE (loaded by `digsite.sae.load_sae("toylang")`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class SAERecipe:
    """How one shipped SAE is trained: where it reads, its size, and the optimiser's settings."""

    name: str  # the shipped SAE's name: weights/saes/NAME.*
    model: str  # the organism whose activations it reads
    hook_name: str
    d_sae: int
    k: int | None  # TopK; None for ReLU + L1
    steps: int
    batch_size: int
    lr: float
    n_docs: int  # toy-language documents of training activations (seed 1,000,000 on: never seen in training)
    seed: int = 0
    resample_every: int | None = None
    l1_coeff: float = 0.0
    eval_docs: int = 300  # fresh documents (seed 3,000,000) the card's metrics are measured on

    def quick(self) -> SAERecipe:
        """A smoke-test version: a small dictionary, few steps, little data (not a usable SAE)."""
        return replace(
            self,
            d_sae=64,
            k=min(self.k or 8, 8),
            steps=20,
            batch_size=256,
            n_docs=40,
            eval_docs=20,
            resample_every=None,
        )


SAE_RECIPES: dict[str, SAERecipe] = {
    "sae-toylang": SAERecipe(
        name="toylang",
        model="toylang",
        hook_name="blocks.2.hook_resid_pre",
        d_sae=512,
        k=24,
        steps=1200,
        batch_size=1024,
        lr=2e-3,
        n_docs=3000,
        seed=0,
        resample_every=200,
    ),
}


def train_sae_recipe(
    name: str, out: str | Path, steps: int | None = None, seed: int | None = None, quick: bool = False
) -> Path:
    """Train the SAE `name` (a key of SAE_RECIPES) into folder `out`, evaluate it, save it with its card."""
    from ..models import load_model
    from ..sae import SAE, SAEConfig, save_sae, train_sae
    from ..sae_eval import collect_activations, evaluate_sae, toylang_tokens

    if name not in SAE_RECIPES:
        raise KeyError(f"unknown SAE {name!r}; known: {sorted(SAE_RECIPES)}")
    recipe = SAE_RECIPES[name].quick() if quick else SAE_RECIPES[name]
    recipe = replace(recipe, **{k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None})
    torch.manual_seed(recipe.seed)
    model = load_model(recipe.model, device="cpu")
    t0 = time.time()
    acts = collect_activations(model, toylang_tokens(model, recipe.n_docs, seed=1_000_000), recipe.hook_name)
    cfg = SAEConfig(
        d_in=acts.shape[1],
        d_sae=recipe.d_sae,
        k=recipe.k,
        l1_coeff=recipe.l1_coeff,
        model_name=recipe.model,
        hook_name=recipe.hook_name,
    )
    sae = SAE(cfg, seed=recipe.seed)
    train_sae(
        sae,
        acts,
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        resample_every=recipe.resample_every,
    )
    wall = time.time() - t0
    eval_tokens = toylang_tokens(model, recipe.eval_docs, seed=3_000_000)
    metrics = evaluate_sae(sae, collect_activations(model, eval_tokens, recipe.hook_name), model, eval_tokens)
    command = f"python -m digsite.organisms train {name} --steps {recipe.steps} --seed {recipe.seed}" + (
        " --quick" if quick else ""
    )
    card = {
        "command": command,
        "recipe": asdict(recipe),
        "train_seconds": round(wall, 1),
        "eval": f"{recipe.eval_docs} fresh toy-language documents (seed 3000000), 64 tokens each, BOS excluded",
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
    }
    out = Path(out)
    save_sae(sae, out / recipe.name, card)
    return out
