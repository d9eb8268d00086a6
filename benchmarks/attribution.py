"""How long one attribution graph takes, and how the time grows with prompt length and feature count.

    python benchmarks/attribution.py [--json] [--repeats N] [--threads T]

On the `toylang` organism with its shipped transcoders (`digsite.attribution.attribution_graph`,
target: the logit of the prompt's next word). Three measurements, each the median of
`--repeats` runs after one warm-up:

1. the chapter's 15-token IOI prompt (the target: under 10 s on 2 cores);
2. prompt length: toy-language text cut to 8, 15, 30 and 60 tokens;
3. feature count: the 15-token prompt with the transcoders' k (features active per token)
   set to 4, 8, 16 and 32 at inference (k = 16 is what they were trained with; other values
   only change how many features the graph has, which is what is measured).

Both wall time and process CPU time are reported: on a shared machine the wall time also
measures waiting for a core, the CPU time the work done.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from digsite import load_model
from digsite.attribution import attribution_graph, exactness_error
from digsite.organisms.data import toylang_texts
from digsite.transcoders import load_transcoders

IOI = "When Mary and John went to the store, John gave a drink to"


def median_s(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of fn(), after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def run(repeats: int = 3, lengths: tuple[int, ...] = (8, 15, 30, 60), ks: tuple[int, ...] = (4, 8, 16, 32)) -> dict:
    """All three measurements as a dict (seconds; feature counts; the largest exactness error seen)."""
    model = load_model("toylang", device="cpu")
    tc = load_transcoders("toylang")
    out: dict = {"threads": torch.get_num_threads(), "repeats": repeats}
    worst = 0.0

    def one(tokens: torch.Tensor) -> dict:
        nonlocal worst
        g = attribution_graph(model, tc, tokens[:-1], int(tokens[-1]))
        worst = max(worst, exactness_error(g))
        wall, cpu = median_s(lambda: attribution_graph(model, tc, tokens[:-1], int(tokens[-1])), repeats)
        return {"tokens": len(tokens) - 1, "features": g.n_features, "nodes": g.n_nodes, "wall_s": wall, "cpu_s": cpu}

    ioi = model.to_tokens(IOI + " Mary")[0]
    out["ioi_15_tokens"] = one(ioi)
    text = model.to_tokens(toylang_texts(1, seed=4_000_000, max_words=100)[0])[0]
    out["by_length"] = [one(text[: n + 1]) for n in lengths if n + 1 <= len(text)]
    k0 = tc.cfg.k
    out["by_k"] = []
    try:
        for k in ks:
            tc.cfg.k = k
            out["by_k"].append({"k": k, **one(ioi)})
    finally:
        tc.cfg.k = k0
    out["max_exactness_error"] = worst
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    r = run(a.repeats)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"torch threads {r['threads']}, median of {r['repeats']} runs")
    g = r["ioi_15_tokens"]
    print(
        f"IOI prompt, {g['tokens']} tokens, {g['features']} features: {g['wall_s']:.2f} s wall, {g['cpu_s']:.2f} s CPU"
    )
    print("by prompt length:")
    for g in r["by_length"]:
        print(
            f"  {g['tokens']:3d} tokens {g['features']:5d} features  {g['wall_s']:6.2f} s wall  {g['cpu_s']:6.2f} s CPU"
        )
    print("by features per token (15-token prompt):")
    for g in r["by_k"]:
        print(f"  k={g['k']:2d} {g['features']:5d} features  {g['wall_s']:6.2f} s wall  {g['cpu_s']:6.2f} s CPU")
    print(f"largest exactness error: {r['max_exactness_error']:.1e}")


if __name__ == "__main__":
    main()
