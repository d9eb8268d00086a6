"""The "Try it on GPT-2" and "Try it on a real model" cells run inside the one nbval pass, against random stand-ins.

Offline (CI, a laptop on a train) `online()` is False and those cells print a line and skip.
Under pytest, the root conftest.py builds the stand-ins (`digsite.stand_ins`: GPT-2, Pythia-160m,
Gemma-2-2b) and sets the switch when solution notebooks that try one are collected, so nbval
runs those cells too.
Here: the switch does what it says, and only while it is set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from digsite import notebook
from digsite.models import load_model
from digsite.stand_ins import MARKER, STAND_IN_ENV, STANDS_IN_FOR, build_stand_ins, stand_in_folder

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "solutions").glob("*.ipynb") if 'load_model(\\"gpt2\\"' in p.read_text())
REAL_MODEL_CELL = "Try it on a real model"


def test_some_notebooks_try_gpt2_and_skip_offline():
    assert len(NOTEBOOKS) >= 6
    for path in NOTEBOOKS:  # every GPT-2 cell is gated, so a learner offline gets a line, not an error
        assert "if online():" in path.read_text(), f"{path.name}: a GPT-2 cell without `if online():`"


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    return build_stand_ins(tmp_path_factory.mktemp("stand-ins"))


def test_switch_makes_gpt2_the_stand_in(stand_ins, monkeypatch, capsys):
    monkeypatch.setenv(STAND_IN_ENV, str(stand_ins))
    assert notebook.online()
    gpt2 = load_model("gpt2", device="cpu")
    assert "test stand-in" in capsys.readouterr().out
    assert (gpt2.cfg.n_layers, gpt2.cfg.n_heads, gpt2.cfg.d_model) == (12, 12, 192)
    assert gpt2.to_str_tokens("Mary gave")[0] == "<|endoftext|>"
    assert stand_in_folder("toylang") is None  # organisms load as always


def test_switch_off_or_wrong_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(STAND_IN_ENV, raising=False)
    assert stand_in_folder("gpt2") is None
    (tmp_path / "gpt2").mkdir()
    monkeypatch.setenv(STAND_IN_ENV, str(tmp_path))  # a folder without the marker is refused
    with pytest.raises(RuntimeError, match=MARKER):
        load_model("gpt2")


def test_chapters_1_to_4_try_a_real_model_gated_like_gpt2():
    """Chapters 1-4 each have a "Try it on a real model" cell, after their GPT-2 cell, on a stood-in model, gated."""
    import json

    for number in ("01", "02", "03", "04"):
        (path,) = (ROOT / "solutions").glob(f"{number}_*.ipynb")
        cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
        heading = next(i for i, c in enumerate(cells) if REAL_MODEL_CELL in c)
        assert heading > next(i for i, c in enumerate(cells) if "Try it on GPT-2" in c), path.name
        code = next(c for c in cells[heading:] if "load_model(" in c)
        assert code.startswith("if online():") and any(f'load_model("{n}"' in code for n in STANDS_IN_FOR[1:]), (
            path.name
        )


@pytest.mark.parametrize("name", STANDS_IN_FOR[1:])
def test_real_model_stand_ins_are_their_family(stand_ins, monkeypatch, capsys, name):
    monkeypatch.setenv(STAND_IN_ENV, str(stand_ins))
    model = load_model(name, device="cpu")
    assert "test stand-in" in capsys.readouterr().out
    expected = {"EleutherAI/pythia-160m": ("gpt_neox", True), "google/gemma-2-2b": ("gemma2", False)}[name]
    assert (model.cfg.architecture, model.cfg.parallel_attn_mlp) == expected
    logits, cache = model.run_with_cache("Mary gave", names_filter=lambda n: n.endswith("hook_pattern"))
    assert logits.shape[-1] == model.cfg.d_vocab and len(cache) == model.cfg.n_layers
