"""Word-level tokenizers for the organisms, saved as Hugging Face ``tokenizer.json``.

``build_tokenizer()`` makes the toy-language tokenizer: one token per vocabulary
word (every name, place, number word ... is a single token), punctuation split off
as its own token, special tokens ``<pad>`` (id 0), ``<bos>`` (id 1), ``<unk>`` (id 2).
Encoding a text with special tokens prepends ``<bos>`` (training sequences begin with
it); decoding joins words with spaces and re-attaches punctuation ("store, John").

``build_modadd_tokenizer(p)`` makes the modular-addition tokenizer: token id i is the
number i (0..p-1), id p is "=", then ``<bos>`` and ``<pad>``; nothing is added when
encoding, so "3 5 =" -> [3, 5, p].

Both load with ``transformers.AutoTokenizer.from_pretrained(folder)`` after
``save_tokenizer(tok, folder)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from .data import BOS_ID, PAD_ID, UNK_ID, all_words

SPECIAL_TOKENS = ["<pad>", "<bos>", "<unk>"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The toy-language word-level tokenizer (specials at ids 0..2, words from id 3)."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    assert (vocab["<pad>"], vocab["<bos>"], vocab["<unk>"]) == (PAD_ID, BOS_ID, UNK_ID)
    for w in all_words():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", BOS_ID)]
    )
    # WordPiece decoder: joins tokens with spaces and removes the space before punctuation
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )


def build_modadd_tokenizer(p: int = 113) -> PreTrainedTokenizerFast:
    """Tokenizer for "a b =": id i <-> the number i for i < p, id p is "=", then <bos>, <pad>."""
    vocab = {str(i): i for i in range(p)}
    vocab["="] = p
    vocab["<bos>"] = p + 1
    vocab["<pad>"] = p + 2
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", clean_up_tokenization_spaces=False
    )


def save_tokenizer(tok: PreTrainedTokenizerFast, folder: str | Path, model_max_length: int | None = None) -> None:
    """Write tokenizer.json + tokenizer_config.json into ``folder``.

    The config names the class ``PreTrainedTokenizerFast`` (transformers 5 writes its own
    ``TokenizersBackend``, which transformers 4 cannot load), so both major versions load it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("backend", None)
    if model_max_length is not None:
        cfg["model_max_length"] = model_max_length
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
