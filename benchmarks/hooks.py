"""How much caching costs: digsite's run_with_cache against a plain forward pass and its peers.

    python benchmarks/hooks.py [--json] [--repeats N] [--keep-freed-memory]

For each model (the GPT-2-architecture organism `toylang` if bundled, else a small random
GPT-2; and a random GPT-2-small-sized model), on the same weights and tokens, the median
wall time of: the plain Hugging Face forward; digsite caching a few names (resid_post of
every layer) and all names; TransformerLens's `TransformerBridge.run_with_cache` (v3+, wraps
the same HF model, raw weights, eager attention), and nnsight saving the same module outputs, when installed
(nnsight "all" saves every module input/output our names cover, but not q/k/v/pattern,
which it cannot reach under SDPA; "digsite nnsight's set" caches those same activations, the
like-for-like comparison). All under torch.no_grad(). Ratios are to the plain forward.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import ctypes.util
import json
import statistics
import sys
import tempfile
import time
from typing import Callable

import torch
from transformers import AutoModelForCausalLM, GPT2Config

from digsite.hooks import HookedModel
from digsite.organisms import organism_names, organism_path


def median_ms(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each run, timed round-robin so that load changes hit all alike."""
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def models() -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """(label, GPT-2-architecture HF model, tokens) pairs to measure."""
    torch.manual_seed(0)
    if "toylang" in organism_names():
        small = AutoModelForCausalLM.from_pretrained(str(organism_path("toylang")))
        label = "toylang organism"
    else:
        small = AutoModelForCausalLM.from_config(GPT2Config(n_layer=4, n_embd=128, n_head=4, vocab_size=1000))
        label = "random GPT-2 4x128"
    big = AutoModelForCausalLM.from_config(GPT2Config())  # GPT-2 small sizes, random weights
    pairs = []
    for name, model, (batch, pos) in [(label, small, (16, 64)), ("random GPT-2 small (124M)", big, (2, 64))]:
        model.eval()
        tokens = torch.randint(0, model.config.vocab_size, (batch, min(pos, model.config.n_positions)))
        pairs.append((f"{name}, tokens {tuple(tokens.shape)}", model, tokens))
    return pairs


def transformer_lens_runner(model: torch.nn.Module, tokens: torch.Tensor, few: list[str]):
    """TransformerLens's TransformerBridge (v3+) on a copy of the same HF model (raw weights), or None."""
    try:
        from tokenizers import Tokenizer
        from tokenizers import models as tok_models
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import PreTrainedTokenizerFast
    except ImportError as error:
        print(f"TransformerLens not measured: {error}", file=sys.stderr)
        return None
    folder = tempfile.mkdtemp()
    model.config.save_pretrained(folder)  # the bridge reads the config from a name or folder
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(tok_models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    )
    # a copy: the bridge switches its model to eager attention, which would slow our baseline
    bridge = TransformerBridge.boot_transformers(
        folder, hf_model=copy.deepcopy(model), tokenizer=tokenizer, device="cpu"
    )
    return {
        "all": lambda: bridge.run_with_cache(tokens),
        "few": lambda: bridge.run_with_cache(tokens, names_filter=few),
    }


def nnsight_runner(model: torch.nn.Module, tokens: torch.Tensor):
    """nnsight saving block outputs (few) and every module output digsite's names cover (all), or None."""
    try:
        from nnsight import NNsight
    except ImportError as error:
        print(f"nnsight not measured: {error}", file=sys.stderr)
        return None
    wrapped = NNsight(model)
    blocks = wrapped.transformer.h

    def few():
        saved = []
        with wrapped.trace(tokens):
            for block in blocks:
                saved.append(block.output.save())
        return saved

    def every():
        saved = []
        with wrapped.trace(tokens):
            for block in blocks:  # in forward order, as nnsight requires
                saved += [block.input.save(), block.ln_1.output.save(), block.attn.c_proj.input.save()]
                saved += [block.attn.output.save(), block.ln_2.input.save(), block.ln_2.output.save()]
                saved += [block.mlp.c_fc.output.save(), block.mlp.c_proj.input.save(), block.mlp.output.save()]
                saved.append(block.output.save())
            saved.append(wrapped.transformer.ln_f.output.save())
        return saved

    return {"few": few, "all": every}


def module_level(name: str) -> bool:
    """The hook names of what nnsight's "all" saves: module inputs and outputs, no attention internals."""
    return name == "ln_final.hook_out" or name.split(".", 2)[-1] in (
        "hook_resid_pre",
        "ln1.hook_out",
        "attn.hook_z",
        "hook_attn_out",
        "hook_resid_mid",
        "ln2.hook_out",
        "mlp.hook_pre",
        "mlp.hook_post",
        "hook_mlp_out",
        "hook_resid_post",
    )


def digsite_runs(model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The plain forward and digsite's three ways of caching, on one model and batch."""
    hm = HookedModel(model)
    few = [f"blocks.{l}.hook_resid_post" for l in range(hm.cfg.n_layers)]
    return {
        "HF forward": lambda: model(tokens),
        "digsite few": lambda: hm.run_with_cache(tokens, few),
        "digsite all": lambda: hm.run_with_cache(tokens),
        "digsite nnsight's set": lambda: hm.run_with_cache(tokens, module_level),
    }


def measure(
    repeats: int,
    report: Callable[[dict], None] = lambda row: None,
    pairs: list[tuple[str, torch.nn.Module, torch.Tensor]] | None = None,
) -> list[dict]:
    """One row per model (default `models()`): medians (ms) and ratios to the plain forward; `report` sees each row."""
    rows = []
    for label, model, tokens in pairs if pairs is not None else models():
        runs = digsite_runs(model, tokens)
        few = [f"blocks.{l}.hook_resid_post" for l in range(model.config.n_layer)]
        for peer, runner in [
            ("TransformerLens", transformer_lens_runner(model, tokens, few)),
            ("nnsight", nnsight_runner(model, tokens)),
        ]:
            if runner is not None:
                runs[f"{peer} few"], runs[f"{peer} all"] = runner["few"], runner["all"]
        with torch.no_grad():
            medians = median_ms(runs, repeats)
        base = medians["HF forward"]
        rows.append({"model": label, "median_ms": medians, "ratio": {k: v / base for k, v in medians.items()}})
        report(rows[-1])
    return rows


def print_row(row: dict) -> None:
    print(f"\n{row['model']}", flush=True)
    for name, ms in row["median_ms"].items():
        print(f"  {name:<24} {ms:9.2f} ms  {row['ratio'][name]:5.2f}x", flush=True)


def keep_freed_memory() -> None:
    """Tell glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel.

    A cache of every name holds tens of MB; by default that memory goes back to the kernel
    when the cache is dropped, and the next run gets fresh pages the kernel must zero. This
    shows how much of the caching cost is that (glibc only; a diagnosis, not a setting the
    package makes).
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_threshold, 1 << 30)):
        raise SystemExit("mallopt failed: --keep-freed-memory needs glibc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--keep-freed-memory", action="store_true", help="glibc keeps freed memory (see keep_freed_memory)"
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        keep_freed_memory()
    if args.json:
        print(json.dumps(measure(args.repeats), indent=2))
    else:
        measure(args.repeats, report=print_row)


if __name__ == "__main__":
    main()
