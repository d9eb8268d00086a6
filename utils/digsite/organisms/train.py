"""Training scripts for the bundled organisms (``python -m digsite.organisms train NAME``).

Each organism has a ``Recipe``: its Hugging Face config, its data, its optimiser
settings and its step count. ``train(name, out)`` trains it from a fixed seed with a
tqdm progress bar and saves a Hugging Face checkpoint into ``out``:
config.json, model.safetensors (safetensors only, never pickles), generation_config,
tokenizer files, ``card.md`` (training command, data recipe, steps, final metrics,
wall time, sha256 of the weights) and, for modadd, ``history.json``.

Organisms:
  induction      2-layer GPT-2, small MLP, repeated random word segments of VARIABLE length
  toylang        4-layer GPT-2, d_model 128, 4 heads, the toy-language mix
  toylang-llama  the same data, Llama architecture (RMSNorm, rotary, gated MLP)
  modadd         1-layer GPT-2 trained full batch on (a + b) mod 113 until it groks
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from . import data as D
from .tokenizer import build_modadd_tokenizer, build_tokenizer, save_tokenizer

MODADD_P = 113
MODADD_FRAC = 0.3
# Steps whose weights the modadd recipe keeps (fp16, in checkpoints.safetensors) for chapter 5's
# progress measures: memorised, on the plateau, circuit forming, grokking, after. The final step is model.safetensors.
MODADD_CHECKPOINT_STEPS = (100, 400, 700, 1000, 1300, 1600)


@dataclass
class Recipe:
    """How one organism is trained."""

    name: str
    make_model: Callable[[int], PreTrainedModel]  # vocab_size -> fresh model
    data: str  # data recipe, human-readable (goes into card.md)
    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.1
    batch_size: int = 32
    warmup: int = 200
    betas: tuple[float, float] = (0.9, 0.99)
    extra: dict[str, Any] = field(default_factory=dict)


def _gpt2(vocab: int, n_layer: int, n_embd: int, n_head: int, n_inner: int, n_pos: int, **kw: Any) -> GPT2LMHeadModel:
    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=n_pos,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_inner=n_inner,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=D.BOS_ID,
        eos_token_id=D.BOS_ID,
        pad_token_id=D.PAD_ID,
        **kw,
    )
    return GPT2LMHeadModel(cfg)


def _llama(vocab: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=D.BOS_ID,
        eos_token_id=D.BOS_ID,
        pad_token_id=D.PAD_ID,
        attention_dropout=0.0,
    )
    return LlamaForCausalLM(cfg)


TOYLANG_RECIPE = (
    "digsite.organisms.data.toylang_texts: documents of ~90 words, each a run of sentences drawn from the "
    "toy-language mix (45% indirect-object sentences from the compositional grammar, train combinations only; "
    "25% is-a / located-in facts and number-word arithmetic; 10% narrative; 10% a sentence repeated twice; "
    "10% a random word segment of 3-12 words repeated twice), each document prefixed with <bos>, "
    "fresh documents every step (seed = step)."
)

RECIPES: dict[str, Recipe] = {
    "induction": Recipe(
        name="induction",
        make_model=lambda v: _gpt2(v, n_layer=2, n_embd=128, n_head=4, n_inner=128, n_pos=64),
        data=(
            "train.induction_mix_batch: 64-token sequences, half of them train.induction_batch (<bos>, then "
            "blocks 'gap segment segment' of random toy-language words, uniform over the non-special words: "
            "gap 0..12 words, segment 4..20 words, fresh lengths per block -- variable lengths and offsets, "
            "since a fixed layout teaches a positional shortcut), half toy-language documents "
            "(data.toylang_texts, cut to 64 tokens), which make a previous-token head useful on its own."
        ),
        steps=5000,
        lr=2e-3,
        batch_size=32,
        warmup=200,
    ),
    "toylang": Recipe(
        name="toylang",
        make_model=lambda v: _gpt2(v, n_layer=4, n_embd=128, n_head=4, n_inner=512, n_pos=128),
        data=TOYLANG_RECIPE,
        steps=4000,
        lr=2e-3,
        batch_size=32,
    ),
    "toylang-llama": Recipe(
        name="toylang-llama",
        make_model=_llama,
        data=TOYLANG_RECIPE,
        steps=4000,
        lr=2e-3,
        batch_size=32,
    ),
    "modadd": Recipe(
        name="modadd",
        make_model=lambda v: _gpt2(
            v, n_layer=1, n_embd=128, n_head=4, n_inner=512, n_pos=3, activation_function="relu"
        ),
        data=(
            f"digsite.organisms.data.modadd_dataset(p={MODADD_P}, frac_train={MODADD_FRAC}, seed=0): all pairs "
            f"'a b =' (ids a, b, {MODADD_P}); label (a+b) mod {MODADD_P} at the last position; full batch."
        ),
        steps=12000,
        lr=1e-3,
        weight_decay=1.0,
        batch_size=0,
        warmup=10,
        betas=(0.9, 0.98),
    ),
}


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(warmup: int, steps: int, constant: bool = False) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if constant:
            return 1.0
        t = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


# ---------------------------------------------------------------- batches


def induction_batch(batch: int, seed: int, seq_len: int = 64, vocab_size: int | None = None) -> torch.LongTensor:
    """(batch, seq_len) of random words with repeats: <bos>, then blocks "gap segment segment", where each
    gap is 0..12 random words and each segment 4..20 random words (fresh lengths per block), cut at seq_len.

    Lengths and offsets vary so that no position tells where a copy starts: only previous-token +
    induction heads predict the repeats (a fixed layout teaches a positional shortcut instead).
    """
    vocab_size = vocab_size or D.N_SPECIAL + len(D.all_words())
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    x = torch.randint(D.N_SPECIAL, vocab_size, (batch, seq_len + 60), generator=g)
    x[:, 0] = D.BOS_ID
    for i in range(batch):
        pos = 1
        while pos < seq_len:
            pos += rng.randint(0, 12)
            L = rng.randint(4, 20)
            x[i, pos + L : pos + 2 * L] = x[i, pos : pos + L]
            pos += 2 * L
    return x[:, :seq_len]


def induction_mix_batch(tok, batch: int, seed: int, seq_len: int = 64) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(input_ids, labels), both (batch, seq_len): half ``induction_batch`` rows (random-word repeats), half
    toy-language documents cut to seq_len (labels -100 on padding).

    The toy-language half makes a previous-token head useful on its own, which is what lets
    the induction circuit (previous-token head -> induction head) form quickly.
    """
    k = batch // 2
    rnd = induction_batch(batch - k, seed, seq_len, vocab_size=len(tok))
    enc = tok(
        D.toylang_texts(k, seed=seed, max_words=seq_len),
        padding="max_length",
        truncation=True,
        max_length=seq_len,
        return_tensors="pt",
    )
    ids = torch.cat([rnd, enc["input_ids"]])
    labels = ids.clone()
    labels[batch - k :][enc["attention_mask"] == 0] = -100
    return ids, labels


def toylang_batch(tok, batch: int, seed: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(input_ids, labels), both (batch, T): <bos> + documents, right-padded; labels -100 on padding."""
    texts = D.toylang_texts(batch, seed=seed)
    enc = tok(texts, padding=True, return_tensors="pt")
    ids = enc["input_ids"]
    labels = ids.clone()
    labels[enc["attention_mask"] == 0] = -100
    return ids, labels


# ---------------------------------------------------------------- saving


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: PreTrainedModel, tok, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    cfg = model.config
    save_tokenizer(tok, out, getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None))
    for junk in ("generation_config.json",):
        p = out / junk
        if p.exists():
            p.unlink()


def write_card(
    out: Path, recipe: Recipe, steps: int, wall: float, metrics: dict[str, Any], command: str, notes: str = ""
) -> None:
    cfg = json.loads((out / "config.json").read_text())
    keys = [
        "model_type",
        "vocab_size",
        "n_layer",
        "n_embd",
        "n_head",
        "n_inner",
        "n_positions",
        "num_hidden_layers",
        "hidden_size",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "activation_function",
        "hidden_act",
    ]
    arch = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    lines = [
        f"# Organism `{recipe.name}`",
        "",
        f"Trained by `{command}`",
        "",
        f"- architecture: {arch}",
        f"- data: {recipe.data}",
        f"- optimiser: AdamW lr={recipe.lr}, betas={recipe.betas}, weight_decay={recipe.weight_decay}, "
        f"warmup {recipe.warmup} steps, batch {'full' if recipe.batch_size == 0 else recipe.batch_size}",
        f"- steps: {steps}",
        f"- training wall time: {wall:.0f} s (CPU, 1 thread)",
        f"- model.safetensors sha256: `{sha256_file(out / 'model.safetensors')}`",
        *(
            [f"- checkpoints.safetensors sha256: `{sha256_file(out / 'checkpoints.safetensors')}`"]
            if (out / "checkpoints.safetensors").exists()
            else []
        ),
        "",
        "## Final metrics (python -m digsite.organisms evaluate)",
        "",
        "```json",
        json.dumps(metrics, indent=2),
        "```",
        "",
    ]
    if notes:
        lines += [notes, ""]
    (out / "card.md").write_text("\n".join(lines))


# ---------------------------------------------------------------- training loops


def _lm_train(
    model: PreTrainedModel, recipe: Recipe, steps: int, get_batch: Callable[[int], tuple], log_every: int, seed: int
) -> list[dict[str, float]]:
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(recipe.warmup, steps // 5 + 1), steps))
    model.train()
    hist = []
    ema = None
    bar = tqdm(range(steps), desc=f"train {recipe.name}", mininterval=5)
    for step in bar:
        ids, labels = get_batch(seed * 1_000_003 + step)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % log_every == 0 or step == steps - 1:
            hist.append({"step": step, "train_loss": round(ema, 4)})
            bar.set_postfix(loss=f"{ema:.3f}")
            print(f"step {step} loss {ema:.4f}", flush=True)
    model.eval()
    return hist


def train_full_batch(
    model: PreTrainedModel,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    opt: torch.optim.Optimizer,
    steps: int,
    log_every: int,
    grokked: float,
    extra_steps: Callable[[int], int],
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    digits: int | None = None,
    desc: str = "grokking",
    progress: bool = True,
    print_every: int | None = None,
    on_step: Callable[[int, PreTrainedModel], None] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """The one grokking loop: full-batch training on (a b =) -> label at the last position, with curves.

    data: (train inputs (N, 3), train labels (N,), test inputs, test labels). Logs step, train/test
    loss and accuracy every `log_every` steps and at the last step (rounded to `digits` if given);
    once test accuracy reaches `grokked`, trains `extra_steps(step)` more steps (capped at
    `steps`) to clean up, then stops. `on_step(step, model)`, if given, is called after each
    optimiser step (the modadd recipe keeps its checkpoints with it). Returns (history, steps run). Used by the `modadd`
    organism's recipe and by chapter 5's live run (`digsite.fourier.train_grokking`).
    """
    xtr, ytr, xte, yte = data

    def rounded(x: float) -> float:
        return round(x, digits) if digits is not None else x

    hist: list[dict[str, float]] = []
    grokked_at = None
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=0.5 if print_every is None else 5)
    last = steps - 1
    for step in bar:
        model.train()
        logits = model(input_ids=xtr).logits[:, -1]
        loss = F.cross_entropy(logits.float(), ytr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if on_step is not None:
            on_step(step, model)
        if step % log_every == 0 or step == last:
            model.eval()
            with torch.no_grad():
                tl = model(input_ids=xte).logits[:, -1]
                rec = {
                    "step": step,
                    "train_loss": rounded(loss.item()),
                    "test_loss": rounded(F.cross_entropy(tl, yte).item()),
                    "train_acc": rounded((logits.argmax(-1) == ytr).float().mean().item()),
                    "test_acc": rounded((tl.argmax(-1) == yte).float().mean().item()),
                }
            hist.append(rec)
            bar.set_postfix(train=f"{rec['train_acc']:.2f}", test=f"{rec['test_acc']:.2f}")
            if print_every and step % print_every == 0:
                print(json.dumps(rec), flush=True)
            if grokked_at is None and rec["test_acc"] >= grokked:
                grokked_at = step
                last = min(steps - 1, step + extra_steps(step))
        if step >= last:
            break
    bar.close()
    model.eval()
    return hist, step + 1


def _modadd_train(
    model: PreTrainedModel, recipe: Recipe, steps: int, seed: int, frac: float, keep: dict[str, torch.Tensor]
) -> tuple[list[dict[str, float]], int]:
    """Train modadd; the weights at MODADD_CHECKPOINT_STEPS go into `keep` as fp16 ("step{N}.{param}")."""

    def snapshot(step: int, m: PreTrainedModel) -> None:
        if step in MODADD_CHECKPOINT_STEPS:
            keep.update({f"step{step}.{n}": p.detach().to(torch.float16).clone() for n, p in m.named_parameters()})

    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(recipe.warmup, steps, constant=True))
    return train_full_batch(
        model,
        D.modadd_dataset(MODADD_P, frac, seed=0),
        opt,
        steps,
        log_every=25,
        grokked=0.999,
        extra_steps=lambda step: max(500, step // 10),
        sched=sched,
        digits=5,
        desc="train modadd",
        print_every=250,
        on_step=snapshot,
    )


def train(
    name: str,
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    quick: bool = False,
    evaluate_after: bool = True,
) -> Path:
    """Train organism ``name`` into folder ``out`` and return it.

    quick=True uses a tiny model and few steps (a smoke test, not a usable organism).
    """
    if name not in RECIPES:
        raise KeyError(f"unknown organism {name!r}; known: {sorted(RECIPES)}")
    recipe = RECIPES[name]
    out = Path(out)
    set_seed(seed)
    tok = build_modadd_tokenizer(MODADD_P) if name == "modadd" else build_tokenizer()
    vocab = len(tok)
    model = recipe.make_model(vocab)
    if quick:
        cfg = model.config
        if name == "toylang-llama":
            cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 1, 32, 64
        else:
            cfg.n_layer, cfg.n_embd, cfg.n_inner = 1, 32, 64
        set_seed(seed)
        model = type(model)(cfg)
    if name == "modadd":  # its own special ids: "=" is p, then <bos>, <pad> (id 0 is the number 0)
        model.config.bos_token_id = model.config.eos_token_id = tok.bos_token_id
        model.config.pad_token_id = tok.pad_token_id
    steps = steps if steps is not None else (5 if quick else recipe.steps)
    t0 = time.time()
    history: list[dict[str, float]]
    kept: dict[str, torch.Tensor] = {}
    if name == "modadd":
        history, steps = _modadd_train(model, recipe, steps, seed, MODADD_FRAC, kept)
    elif name == "induction":
        bs = 4 if quick else recipe.batch_size
        history = _lm_train(
            model, recipe, steps, lambda s: induction_mix_batch(tok, bs, s), log_every=max(1, steps // 50), seed=seed
        )
    else:
        bs = 2 if quick else recipe.batch_size
        history = _lm_train(
            model, recipe, steps, lambda s: toylang_batch(tok, bs, s), log_every=max(1, steps // 50), seed=seed
        )
    wall = time.time() - t0
    save_checkpoint(model, tok, out)
    if kept:
        save_file(
            kept,
            str(out / "checkpoints.safetensors"),
            metadata={"steps": json.dumps(sorted({int(k.split(".")[0][4:]) for k in kept}))},
        )
    (out / "history.json").write_text(
        json.dumps(
            {
                "organism": name,
                "steps": steps,
                "seed": seed,
                "wall_time_s": round(wall, 1),
                "config": {"p": MODADD_P, "frac_train": MODADD_FRAC, "data_seed": 0} if name == "modadd" else {},
                "history": history,
            }
        )
    )
    metrics: dict[str, Any] = {}
    if evaluate_after and not quick:
        from .evaluate import evaluate_path

        metrics = evaluate_path(name, out)
    write_card(out, recipe, steps, wall, metrics, _command(name, steps, seed, quick), _notes(name, metrics))
    return out


def _command(name: str, steps: int, seed: int, quick: bool = False) -> str:
    return f"python -m digsite.organisms train {name} --steps {steps} --seed {seed}" + (" --quick" if quick else "")


def finish_card(name: str, out: str | Path) -> dict[str, Any]:
    """Re-evaluate the checkpoint in ``out`` and rewrite its card.md (metrics, sha256, wall time from history.json)."""
    from .evaluate import evaluate_path

    out = Path(out)
    hist = json.loads((out / "history.json").read_text())
    metrics = evaluate_path(name, out)
    write_card(
        out,
        RECIPES[name],
        hist["steps"],
        hist["wall_time_s"],
        metrics,
        _command(name, hist["steps"], hist["seed"]),
        _notes(name, metrics),
    )
    return metrics


def _notes(name: str, m: dict[str, Any]) -> str:
    if name == "modadd":
        return (
            f"history.json holds train/test loss and accuracy every 25 steps. Train accuracy reached 99% at "
            f"step {m.get('step_train_acc_99')}, test accuracy at step {m.get('step_test_acc_99')} (grokking); "
            "training stops max(500, step/10) steps after test accuracy reaches 99.9%. "
            f"checkpoints.safetensors holds the weights (fp16) after steps {list(MODADD_CHECKPOINT_STEPS)}, "
            "for chapter 5's progress measures (`digsite.fourier.load_checkpoint`)."
        )
    return "history.json holds the training loss (moving average) every steps/50 steps."
