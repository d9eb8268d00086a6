"""The benchmarks still run and still compare like with like. No timing is asserted: only
what each benchmark promises about the things it times (that they compute the same thing)."""

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config

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
        assert result[label]["max_abs_diff"] < 1e-5, label


def test_hooks_benchmark_runs_compute_the_same_forward_and_the_nnsight_set():
    bench = load("hooks")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50)).eval()
    tokens = torch.randint(0, 50, (2, 7))
    runs = bench.digsite_runs(model, tokens)
    with torch.no_grad():
        plain = runs["HF forward"]().logits
        caches = {}
        for label in ("digsite few", "digsite all", "digsite nnsight's set"):
            logits, caches[label] = runs[label]()
            torch.testing.assert_close(logits, plain, msg=label)
    # like for like: the nnsight set is the 10 module inputs/outputs per block nnsight saves, plus ln_f's output
    assert len(caches["digsite nnsight's set"]) == 10 * 2 + 1
    assert set(caches["digsite nnsight's set"]) <= set(caches["digsite all"])
    torch.testing.assert_close(
        caches["digsite all"]["ln_final.hook_out"], model.transformer.ln_f(caches["digsite all"]["resid_post", 1])
    )
    rows = bench.measure(repeats=1, pairs=[("tiny", model, tokens)])
    assert [row["model"] for row in rows] == ["tiny"] and set(runs) <= set(rows[0]["median_ms"])


def test_attribution_benchmark_measures_lengths_and_feature_counts():
    bench = load("attribution")
    result = bench.run(repeats=1, lengths=(8,), ks=(4, 16))
    assert result["ioi_15_tokens"]["tokens"] == 15
    assert [row["k"] for row in result["by_k"]] == [4, 16]
    assert result["by_k"][0]["features"] < result["by_k"][1]["features"]
    assert result["max_exactness_error"] < 1e-9
