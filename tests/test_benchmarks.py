"""The benchmarks still run and still compare like with like (one repeat each: no timing is asserted)."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    """A benchmark script as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patching_benchmark_variants_agree_with_the_loop():
    bench = load("patching")
    result = bench.run(n_prompts=2, repeats=1)
    assert result["patches"] == 4 * result["tokens"]
    for label in bench.VARIANTS:
        assert result[label]["max_abs_diff"] < 1e-5
        assert result[label]["wall_ms"] > 0


def test_hooks_benchmark_times_every_run_on_both_models():
    bench = load("hooks")
    rows = bench.measure(repeats=1)
    assert len(rows) == 2
    for row in rows:
        assert row["ratio"]["HF forward"] == 1.0
        assert {"digsite few", "digsite all", "digsite nnsight's set"} <= set(row["median_ms"])


def test_attribution_benchmark_measures_lengths_and_feature_counts():
    bench = load("attribution")
    result = bench.run(repeats=1, lengths=(8,), ks=(4, 16))
    assert result["ioi_15_tokens"]["tokens"] == 15
    assert [row["k"] for row in result["by_k"]] == [4, 16]
    assert result["by_k"][0]["features"] < result["by_k"][1]["features"]
    assert result["max_exactness_error"] < 1e-9
