"""Loading models for the course: bundled organisms or Hugging Face hub names, wrapped with hooks.

`load_model("toylang")` loads a bundled organism (no network); `load_model("gpt2")` loads
from the local Hugging Face cache first and only then from the hub. Offline, a hub name
that is not cached fails within about two seconds with a message naming the bundled
organisms instead of waiting on download retries. `wrap(model, tokenizer)` hooks a model
you already loaded yourself.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from .hooks import HookedModel
from .organisms import organism_names, organism_path
from .stand_ins import stand_in_folder

_TRUE = ("1", "true", "yes", "on")


class OfflineError(OSError):
    """A hub model was asked for while the hub cannot be reached and it is not cached."""


def default_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether huggingface.co (or $HF_ENDPOINT) answers within `timeout` seconds; False if HF_HUB_OFFLINE."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    answered: list[bool] = []

    def probe() -> None:  # in a thread: a DNS lookup can hang longer than the socket timeout
        try:  # a real HTTPS answer, since some networks accept any TCP connection
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # the server answered, if only with an error status
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)


def _offline_message(name: str) -> str:
    bundled = ", ".join(organism_names()) or "(none installed)"
    return (
        f"Cannot load {name!r}: it is not in the local Hugging Face cache and the hub "
        "(huggingface.co) cannot be reached or HF_HUB_OFFLINE is set.\n"
        f"Bundled models that work offline: {bundled} — e.g. load_model({(organism_names() or ['toylang'])[0]!r}).\n"
        f"To use {name!r}, connect to the internet (and unset HF_HUB_OFFLINE) and run load_model once; "
        "it is then cached and loads offline too."
    )


def _from_pretrained(source: str | Path, **kwargs) -> tuple[nn.Module, object]:
    """Load model and tokenizer without transformers' "Loading weights" bar (noise in every notebook)."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return model, tokenizer


def wrap(hf_model: nn.Module, tokenizer=None) -> HookedModel:
    """Hook points on an already-loaded Hugging Face causal LM (GPT-2, GPT-NeoX, Llama family)."""
    return HookedModel(hf_model, tokenizer)


def load_model(
    name: str,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> HookedModel:
    """A bundled organism ("toylang", ...), a local checkpoint folder or a hub name ("gpt2"), hooked.

    The tokenizer comes along as `model.tokenizer`. Device defaults to `default_device()`;
    dtype to the checkpoint's. The model is put in eval mode.
    """
    stand_in = stand_in_folder(name)
    if stand_in is not None:  # the test suite's switch (digsite.stand_ins), never set in normal use
        print(f"(test stand-in for {name!r}: random weights from {stand_in})")
        model, tokenizer = _from_pretrained(stand_in)
    elif name in organism_names():
        model, tokenizer = _from_pretrained(organism_path(name))
    elif Path(name).is_dir():
        model, tokenizer = _from_pretrained(name)
    else:
        try:
            model, tokenizer = _from_pretrained(name, local_files_only=True)
        except OSError:
            if not hub_reachable():
                raise OfflineError(_offline_message(name)) from None
            model, tokenizer = _from_pretrained(name)
    model.to(device=device or default_device(), dtype=dtype)
    model.eval()
    return wrap(model, tokenizer)
