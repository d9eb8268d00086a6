"""The batched residual-stream patching sweep against one patch per forward pass.

    python benchmarks/patching.py [--json] [--repeats N] [--prompts 8 32] [--threads T]

On the `toylang` organism and the chapter's IOI prompts (name-swap corruption, 15 tokens),
denoising sweep over blocks.{l}.hook_resid_pre for every layer and position (4 x 15 = 60
patches): `patch_loop` (one forward pass per patch, the loop a learner writes first)
against `patch_sweep` with each of its savings switched on in turn: batching alone (many
patches per pass), + reusing the corrupt run below the patched layer, + skipping patches
that change nothing (positions before the first token that differs), + running only the
positions from the first change on (the corrupt run's keys and values for the positions
before, as a key-value cache). Reports median wall
times (after warm-up), the speed-up over the loop and the largest difference from the
loop's values (they must agree to float precision).

Both wall time and process CPU time are measured: on a shared, oversubscribed machine the
wall time mostly measures waiting for a core, while the CPU time measures the work done.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch

from digsite import load_model
from digsite import patching as P


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, process CPU) time of fn() in milliseconds, after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


VARIANTS = {
    "batched only": dict(reuse_prefix=False, skip_noops=False, reuse_positions=False),
    "+ layer prefix reuse": dict(reuse_prefix=True, skip_noops=False, reuse_positions=False),
    "+ skip no-op patches": dict(reuse_prefix=True, skip_noops=True, reuse_positions=False),
    "+ position prefix reuse (default)": dict(reuse_prefix=True, skip_noops=True, reuse_positions=True),
}


def run(n_prompts: int, repeats: int) -> dict:
    """Times and agreement for one batch size."""
    model = load_model("toylang", device="cpu")
    data = P.ioi_data(model, n_prompts, seed=0)
    metric, _, _ = P.ioi_metric(model, data)
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(data.clean, names_filter=names)
    source = {n: cache[n] for n in names}
    patches = [P.Patch(n, (p,)) for n in names for p in range(data.clean.shape[1])]
    reference = P.patch_loop(model, data.corrupt, source, patches, metric)
    result = {"prompts": n_prompts, "patches": len(patches), "tokens": data.clean.shape[1]}
    loop_wall, loop_cpu = median_ms(lambda: P.patch_loop(model, data.corrupt, source, patches, metric), repeats)
    result["loop"] = {"wall_ms": loop_wall, "cpu_ms": loop_cpu}
    for label, kwargs in VARIANTS.items():
        values = P.patch_sweep(model, data.corrupt, source, patches, metric, **kwargs)
        wall, cpu = median_ms(
            lambda kwargs=kwargs: P.patch_sweep(model, data.corrupt, source, patches, metric, **kwargs), repeats
        )
        result[label] = {
            "wall_ms": wall,
            "cpu_ms": cpu,
            "speedup_wall": loop_wall / wall,
            "speedup_cpu": loop_cpu / cpu,
            "max_abs_diff": float((values - reference).abs().max()),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompts", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [run(n, args.repeats) for n in args.prompts]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"toylang, resid_pre sweep, {results[0]['patches']} patches of {results[0]['tokens']} tokens, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    for r in results:
        loop = r["loop"]
        print(
            f"\n{r['prompts']} prompts: one patch per forward: wall {loop['wall_ms']:.0f} ms, CPU {loop['cpu_ms']:.0f} ms"
        )
        for label in VARIANTS:
            v = r[label]
            print(
                f"  {label:36s} wall {v['wall_ms']:7.0f} ms ({v['speedup_wall']:4.1f}x)  "
                f"CPU {v['cpu_ms']:6.0f} ms ({v['speedup_cpu']:4.1f}x)  max |diff| {v['max_abs_diff']:.1e}"
            )


if __name__ == "__main__":
    main()
