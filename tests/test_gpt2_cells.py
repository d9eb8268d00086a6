"""The "Try it on GPT-2" cells run inside the one nbval pass, against a random stand-in for GPT-2.

Offline (CI, a laptop on a train) `online()` is False and those cells print a line and skip.
Under pytest, the root conftest.py builds the stand-in (`digsite.stand_ins`) and sets the
switch when solution notebooks that try GPT-2 are collected, so nbval runs those cells too.
Here: the switch does what it says, and only while it is set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from digsite import notebook
from digsite.models import load_model
from digsite.stand_ins import MARKER, STAND_IN_ENV, build_gpt2_stand_in, stand_in_folder

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "solutions").glob("*.ipynb") if 'load_model(\\"gpt2\\"' in p.read_text())


def test_some_notebooks_try_gpt2_and_skip_offline():
    assert len(NOTEBOOKS) >= 6
    for path in NOTEBOOKS:  # every GPT-2 cell is gated, so a learner offline gets a line, not an error
        assert "if online():" in path.read_text(), f"{path.name}: a GPT-2 cell without `if online():`"


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Path:
    return build_gpt2_stand_in(tmp_path_factory.mktemp("stand-ins"))


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
