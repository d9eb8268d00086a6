"""Random stand-ins for hub models, so the test suite runs the "Try it on GPT-2" cells offline.

For tests only. The switch is the environment variable `STAND_IN_ENV`, naming a folder that
`build_gpt2_stand_in` wrote (it holds a marker file, `MARKER`). While it is set, `online()` is
True and `load_model("gpt2")` loads the stand-in from that folder instead of the hub, and says
so. The repository's root conftest.py sets it for a pytest session that runs solution
notebooks; nothing else does, and a folder without the marker is refused, so a learner cannot
reach it by accident.

The stand-in is a randomly initialised GPT-2 with GPT-2 small's 12 layers and 12 heads
(narrower, d_model 192, to stay quick) and a byte-level BPE tokenizer trained on the toy
language: every call, shape and hook name in those cells is exercised; their numbers mean nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STAND_IN_ENV = "DIGSITE_TEST_STAND_INS"
MARKER = "digsite-test-stand-in.json"
STANDS_IN_FOR = ("gpt2",)
END_OF_TEXT = "<|endoftext|>"


def stand_in_folder(name: str) -> Path | None:
    """The stand-in folder for hub model `name` while the test switch is on; None otherwise.

    Raises a clear error if the switch is set to a folder `build_gpt2_stand_in` did not write.
    """
    root = os.environ.get(STAND_IN_ENV)
    if not root or name not in STANDS_IN_FOR:
        return None
    folder = Path(root) / name
    if not (folder / MARKER).is_file():
        raise RuntimeError(
            f"{STAND_IN_ENV} is set to {root!r}, which holds no test stand-in for {name!r} ({MARKER} missing). "
            f"It is a switch for the test suite only: unset it (`del os.environ[{STAND_IN_ENV!r}]`)."
        )
    return folder


def switch_on() -> bool:
    """Whether the test switch is set (then `online()` answers True without asking the network)."""
    return bool(os.environ.get(STAND_IN_ENV))


def build_gpt2_stand_in(root: str | Path) -> Path:
    """Write the random GPT-2 stand-in (model, tokenizer, marker) to root/gpt2 and return root."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from .organisms.data import all_words, toylang_texts

    corpus = toylang_texts(3000, seed=0) + [" ".join(f" {n}" for n in range(100)), " " + " ".join(all_words())]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=2000,
            special_tokens=[END_OF_TEXT],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=192, bos_token_id=0, eos_token_id=0))
    torch.random.set_rng_state(generator_state)
    folder = Path(root) / "gpt2"
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the test log
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    (folder / MARKER).write_text(json.dumps({"stands_in_for": "gpt2", "weights": "random (seed 0)", "d_model": 192}))
    return Path(root)
