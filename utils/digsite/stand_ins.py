"""Random stand-ins for hub models, so the test suite runs the "Try it on GPT-2" and "Try it on a real model" cells offline.

For tests only. The switch is the environment variable `STAND_IN_ENV`, naming a folder that
`build_stand_ins` wrote (each model's folder holds a marker file, `MARKER`). While it is set,
`online()` is True and `load_model(name)` loads the stand-in for each name in `STANDS_IN_FOR`
from that folder instead of the hub, and says so. The repository's root conftest.py sets it for
a pytest session that runs solution notebooks; nothing else does, and a folder without the
marker is refused, so a learner cannot reach it by accident.

Each stand-in is a randomly initialised model of the real one's family and layout, narrower to
stay quick, with a byte-level BPE tokenizer trained on the toy language: GPT-2 (GPT-2 small's
12 layers and 12 heads, d_model 192), Pythia-160m (GPT-NeoX: 12 layers, 12 heads, parallel
attention and MLP, rotary on a quarter of each head; d_model 192) and Gemma-2-2b (Gemma 2:
sandwich norms, soft caps, alternating local and global attention, grouped-query attention;
6 layers, d_model 128). Every call, shape and hook name in those cells is exercised; their
numbers mean nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STAND_IN_ENV = "DIGSITE_TEST_STAND_INS"
MARKER = "digsite-test-stand-in.json"
STANDS_IN_FOR = ("gpt2", "EleutherAI/pythia-160m", "google/gemma-2-2b")
END_OF_TEXT = "<|endoftext|>"


def stand_in_folder(name: str) -> Path | None:
    """The stand-in folder for hub model `name` while the test switch is on; None otherwise.

    Raises a clear error if the switch is set to a folder `build_stand_ins` did not write.
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


def _stand_in_configs(vocab_size: int) -> dict:
    """Per hub name: a random config of its family, narrower than the real model."""
    from transformers import Gemma2Config, GPT2Config, GPTNeoXConfig

    ids = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0)
    return {
        "gpt2": GPT2Config(n_embd=192, **ids),
        "EleutherAI/pythia-160m": GPTNeoXConfig(
            num_hidden_layers=12,
            num_attention_heads=12,
            hidden_size=192,
            intermediate_size=768,
            rotary_pct=0.25,
            use_parallel_residual=True,
            max_position_embeddings=2048,
            **ids,
        ),
        "google/gemma-2-2b": Gemma2Config(
            num_hidden_layers=6,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=16,
            hidden_size=128,
            intermediate_size=256,
            query_pre_attn_scalar=16,
            sliding_window=32,
            max_position_embeddings=8192,
            pad_token_id=0,
            **ids,
        ),
    }


def build_stand_ins(root: str | Path) -> Path:
    """Write every random stand-in (model, tokenizer, marker) to root/<hub name> and return root."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

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
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the test log
    generator_state = torch.random.get_rng_state()
    try:
        for name, config in _stand_in_configs(len(tokenizer)).items():
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config)
            folder = Path(root) / name
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            marker = {"stands_in_for": name, "weights": "random (seed 0)", "d_model": config.hidden_size}
            (folder / MARKER).write_text(json.dumps(marker))
    finally:
        torch.random.set_rng_state(generator_state)
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return Path(root)
