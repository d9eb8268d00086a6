"""Tests of the model organisms: data generators, tokenizer, training smoke test, shipped weights."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from digsite.organisms import WEIGHTS_DIR, organism_names, organism_path
from digsite.organisms import data as D
from digsite.organisms.tokenizer import build_modadd_tokenizer, build_tokenizer, save_tokenizer

ORGANISMS = ["induction", "toylang", "toylang-llama", "modadd"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    save_tokenizer(build_tokenizer(), folder)
    return AutoTokenizer.from_pretrained(str(folder))


# ------------------------------------------------------------------ data generators


def test_generators_are_seeded():
    assert D.ioi_prompts(20, seed=3) == D.ioi_prompts(20, seed=3)
    assert D.ioi_prompts(20, seed=3) != D.ioi_prompts(20, seed=4)
    assert D.fact_prompts(20, seed=1) == D.fact_prompts(20, seed=1)
    assert D.false_facts(20, seed=1) == D.false_facts(20, seed=1)
    assert D.arithmetic_prompts(20, seed=1) == D.arithmetic_prompts(20, seed=1)
    assert D.toylang_texts(5, seed=2) == D.toylang_texts(5, seed=2)
    assert torch.equal(D.repeated_tokens(4, 7, seed=1), D.repeated_tokens(4, 7, seed=1))
    a, b = D.modadd_dataset(23, 0.3, seed=0), D.modadd_dataset(23, 0.3, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_every_word_is_one_token(tok):
    for w in D.all_words():
        assert len(tok.encode(w, add_special_tokens=False)) == 1, w
        assert len(tok.encode(" " + w, add_special_tokens=False)) == 1, w
    for n in D.NAMES:
        assert tok.convert_ids_to_tokens(tok.encode(" " + n, add_special_tokens=False)) == [n]


def _count(text: str, word: str) -> int:
    return len(re.findall(rf"\b{word}\b", text))


@pytest.mark.parametrize("split", ["train", "heldout", "heldout_template"])
def test_ioi_answer_is_the_io_name(tok, split):
    for p in D.ioi_prompts(200, seed=1, split=split):
        assert p.split == split and p.answer == " " + p.io and p.io != p.s
        assert _count(p.text, p.io) == 1 and _count(p.text, p.s) == 2
        assert _count(p.corrupt_text, p.s) == 0 and _count(p.corrupt_text, p.io) == 1
        others = [n for n in D.NAMES if n not in (p.io, p.s) and _count(p.corrupt_text, n)]
        assert len(others) == 2 and all(_count(p.corrupt_text, n) == 1 for n in others)
        assert len(tok(p.text).input_ids) == len(tok(p.corrupt_text).input_ids)
        assert (p.template in D.HELDOUT_TEMPLATES) == (split == "heldout_template")


def test_same_length_within_a_template(tok):
    for t in D.TRAIN_TEMPLATES + D.HELDOUT_TEMPLATES:
        split = "heldout_template" if t in D.HELDOUT_TEMPLATES else "heldout"
        ps = D.ioi_prompts(40, seed=2, split=split, same_length=True, template=t)
        lengths = {len(tok(x).input_ids) for p in ps for x in (p.text, p.corrupt_text)}
        assert len(lengths) == 1, (t, lengths)


def _combos(prompts):
    out = set()
    for p in prompts:
        place = next(w for w in D.PLACES if _count(p.text, w))
        out.add((*sorted((p.io, p.s)), place))
    return out


def test_heldout_combinations_never_in_training():
    train = D.ioi_prompts(3000, seed=0, split="train")
    held = D.ioi_prompts(500, seed=0, split="heldout")
    tr, he = _combos(train), _combos(held)
    assert tr.isdisjoint(he)
    assert all(D.is_heldout_combo(*c) for c in he) and not any(D.is_heldout_combo(*c) for c in tr)
    # ... while every name, place and template family of the held-out set occurs in training
    assert {n for c in he for n in c[:2]} <= {n for c in tr for n in c[:2]}
    assert {c[2] for c in he} <= {c[2] for c in tr}
    assert {p.template for p in held} == set(D.TRAIN_TEMPLATES) == {p.template for p in train}
    # the training documents hold no held-out combination and no held-out template
    for doc in D.toylang_texts(300, seed=0):
        for m in re.finditer(r"(\w+) and (\w+) (?:went|walked|ran|drove|came|were|had)[^.]*? the (\w+)", doc):
            a, b, place = m.groups()
            if a in D.NAMES and b in D.NAMES and place in D.PLACES:
                assert not D.is_heldout_combo(a, b, place), m.group(0)
        for m in re.finditer(r"(\w+) met (\w+) at the", doc):
            assert not (m.group(1) in D.NAMES and m.group(2) in D.NAMES), m.group(0)


def test_facts_and_arithmetic(tok):
    for _, ans in D.fact_prompts(50) + D.arithmetic_prompts(50):
        assert ans.startswith(" ") and len(tok.encode(ans, add_special_tokens=False)) == 1
    truth = {(s, o) for s, _, o in D.fact_table()}
    for text, ans in D.false_facts(50):
        subj = text.split()[1] if text.split()[0] in ("a", "an") else text.split()[0]
        assert (subj, ans.strip()) not in truth
    assert ("a cat is an", " animal") in [D._fact_prompt(*f) for f in D.fact_table()]
    assert ("Paris is in", " France") in [D._fact_prompt(*f) for f in D.fact_table()]
    for text, ans in D.arithmetic_prompts(100):
        a, op, b, _ = text.split()
        x, y = D.NUMBER_WORDS.index(a), D.NUMBER_WORDS.index(b)
        assert D.NUMBER_WORDS.index(ans.strip()) == (x + y if op == "plus" else x - y)
    st = D.fact_statements(40)
    assert sum(t for _, t in st) == 20


def test_repeated_tokens_and_modadd():
    x = D.repeated_tokens(3, 5, seed=0)
    assert x.shape == (3, 11) and x.dtype == torch.long and (x[:, 0] == D.BOS_ID).all()
    assert torch.equal(x[:, 1:6], x[:, 6:]) and (x[:, 1:] >= D.N_SPECIAL).all()
    xtr, ytr, xte, yte = D.modadd_dataset(17, 0.5, seed=0)
    assert xtr.shape[1] == 3 and len(xtr) + len(xte) == 17 * 17 and len(xtr) == round(0.5 * 289)
    assert ((xtr[:, 0] + xtr[:, 1]) % 17 == ytr).all() and (xte[:, 2] == 17).all()
    assert not {tuple(r) for r in xtr.tolist()} & {tuple(r) for r in xte.tolist()}


# ------------------------------------------------------------------ tokenizer


def test_tokenizer_round_trip(tok):
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.bos_token == "<bos>" and tok.pad_token == "<pad>" and tok.bos_token_id == D.BOS_ID
    for text in [p.text for p in D.ioi_prompts(20)] + D.toylang_texts(5) + ["a cat is an animal"]:
        ids = tok(text).input_ids
        assert ids[0] == D.BOS_ID and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    p = D.ioi_prompts(1)[0]
    assert tok.decode(tok(p.text + p.answer).input_ids[-1:]) == p.io
    toks = tok.convert_ids_to_tokens(tok("When Mary and John went to the store,").input_ids)
    assert toks == ["<bos>", "When", "Mary", "and", "John", "went", "to", "the", "store", ","]


def test_modadd_tokenizer(tmp_path):
    save_tokenizer(build_modadd_tokenizer(113), tmp_path)
    t = AutoTokenizer.from_pretrained(str(tmp_path))
    assert t("3 105 =").input_ids == [3, 105, 113]
    assert t.decode([3, 105, 113]) == "3 105 ="
    assert t.bos_token is not None and t.pad_token is not None


# ------------------------------------------------------------------ training smoke test


@pytest.mark.parametrize("name", ORGANISMS)
def test_quick_training_writes_a_checkpoint(tmp_path, name):
    from digsite.organisms.train import train

    torch.set_num_threads(1)
    out = train(name, tmp_path / name, steps=3, quick=True)
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "card.md", "history.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    card = (out / "card.md").read_text()
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() in card
    model = AutoModelForCausalLM.from_pretrained(str(out))
    t = AutoTokenizer.from_pretrained(str(out))
    ids = (
        torch.tensor([t("1 2 =").input_ids]) if name == "modadd" else t("Mary and John", return_tensors="pt").input_ids
    )
    assert model(input_ids=ids).logits.shape[-1] == len(t)


def test_cli_lists_and_rejects_unknown():
    from digsite.organisms.__main__ import main
    from digsite.organisms.train import train

    with pytest.raises(KeyError):
        train("no-such-organism", "/tmp/none")
    assert main(["list"]) == 0


# ------------------------------------------------------------------ shipped weights


def _shipped() -> list[str]:
    return [n for n in ORGANISMS if n in organism_names()]


@pytest.mark.skipif(
    not _shipped(), reason="no organism weights shipped yet (train them with python -m digsite.organisms train NAME)"
)
def test_shipped_weights_pass_evaluation():
    from digsite.organisms.evaluate import evaluate

    torch.set_num_threads(2)
    results = evaluate(_shipped())
    bad = {n: m["failures"] for n, m in results.items() if m["failures"]}
    assert not bad, bad


@pytest.mark.skipif(not _shipped(), reason="no organism weights shipped yet")
def test_shipped_weights_small_and_loadable():
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert total <= 30 * 2**20, f"{total / 2**20:.1f} MB"
    assert not [p for p in WEIGHTS_DIR.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    for n in _shipped():  # small (above) and loadable; how fast depends on the machine, so it is not asserted
        AutoModelForCausalLM.from_pretrained(str(organism_path(n)))
        AutoTokenizer.from_pretrained(str(organism_path(n)))
        card = (organism_path(n) / "card.md").read_text()
        digest = hashlib.sha256((organism_path(n) / "model.safetensors").read_bytes()).hexdigest()
        assert digest in card, f"{n}: card.md sha256 does not match the weights"


@pytest.mark.skipif("modadd" not in organism_names(), reason="modadd weights not shipped yet")
def test_modadd_history_shows_grokking():
    h = json.loads((organism_path("modadd") / "history.json").read_text())["history"]
    assert {"step", "train_loss", "test_loss", "train_acc", "test_acc"} <= set(h[0])


@pytest.mark.skipif("modadd" not in organism_names(), reason="modadd weights not shipped yet")
def test_modadd_checkpoints_are_small_fp16_and_in_the_card():
    from safetensors import safe_open

    from digsite.organisms.train import MODADD_CHECKPOINT_STEPS

    path = organism_path("modadd") / "checkpoints.safetensors"
    card = (organism_path("modadd") / "card.md").read_text()
    assert hashlib.sha256(path.read_bytes()).hexdigest() in card, "card.md sha256 does not match checkpoints"
    assert path.stat().st_size <= 2.6 * 2**20
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["steps"]) == list(MODADD_CHECKPOINT_STEPS)
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        assert {k.split(".")[0] for k in f.keys()} == {f"step{s}" for s in MODADD_CHECKPOINT_STEPS}


def test_modadd_training_keeps_its_checkpoints(tmp_path, monkeypatch):
    from digsite import fourier
    from digsite.organisms import train as T

    torch.set_num_threads(1)
    monkeypatch.setattr(T, "MODADD_CHECKPOINT_STEPS", (1,))
    out = T.train("modadd", tmp_path / "modadd", steps=3, quick=True)
    assert fourier.checkpoint_steps(out) == [1, 2]
    card = (out / "card.md").read_text()
    assert hashlib.sha256((out / "checkpoints.safetensors").read_bytes()).hexdigest() in card
    step1 = fourier.load_checkpoint(1, out, device="cpu")
    assert step1(torch.tensor([[1, 2, 113]])).shape == (1, 3, 116)
