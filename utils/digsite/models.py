"""Loading models for the course: bundled organisms or Hugging Face hub names, wrapped with hooks.

`load_model("toylang")` loads a bundled organism (no network); `load_model("gpt2")` loads
from the local Hugging Face cache first and only then from the hub. Loading never hangs
and never lies:
- offline, a hub name that is not cached fails within about two seconds with a message
  naming the bundled organisms; online, every download runs under a total deadline and a
  stalled hub is reported with what was tried;
- the architecture is checked from the config, before any weights are read;
- a path that does not exist, a folder without tokenizer files and a tokenizer that does
  not fit the model's vocabulary are errors that say so;
- shipped weights are checked against the sha256 their card records (once per file per
  process) and copied into memory, so a file changed later cannot change a loaded model.
`wrap(model, tokenizer)` hooks a model you already loaded yourself (in eval mode).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .adapters import adapter_for_config
from .hooks import HookedModel
from .organisms import organism_names, organism_path
from .stand_ins import stand_in_folder

_TRUE = ("1", "true", "yes", "on")
_T = TypeVar("_T")
#: Files any one of which makes a folder's tokenizer loadable.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
#: Seconds allowed for fetching a hub model's config (which also proves the hub answers real requests).
CONFIG_DEADLINE = 30.0
#: Seconds allowed for downloading a hub model's weights and tokenizer (a 2B-parameter model on a slow link).
DOWNLOAD_DEADLINE = 1800.0


class OfflineError(OSError):
    """A hub model was asked for while the hub cannot be reached and it is not cached."""


class HubTimeoutError(TimeoutError):
    """The hub answered the probe but a download did not finish within its deadline."""


class UnsupportedModelError(NotImplementedError):
    """The checkpoint's architecture has no digsite adapter (found from its config, before loading weights)."""


class CorruptWeightsError(OSError):
    """A shipped weights file does not match the sha256 its card records."""


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
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answered: list[bool] = []

    def probe() -> None:  # in a thread: a DNS lookup can hang longer than the socket timeout
        # A real file request, not just `HEAD /`: some networks (and broken mirrors) answer the
        # root, or accept any TCP connection, and then stall on every download.
        url = f"{endpoint}/gpt2/resolve/main/config.json"
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
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


def _with_deadline(work: Callable[[], _T], seconds: float, what: str) -> _T:
    """Run `work` in a daemon thread; raise HubTimeoutError naming `what` if it is not done in `seconds`."""
    result: list[Any] = []
    error: list[Exception] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as err:  # noqa: BLE001 (handed to the caller's thread, unchanged)
            error.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise HubTimeoutError(
            f"{what} did not finish within {seconds:.0f} s: the hub ({endpoint}) answered the reachability probe "
            "but then stalled. Check your connection or proxy and try again, or set HF_HUB_OFFLINE=1 and use a "
            f"bundled model ({', '.join(organism_names())})."
        )
    if error:
        raise error[0]
    return result[0]


def _looks_like_path(name: str) -> bool:
    """A name that can only be a local path (hub ids are "name" or "owner/name")."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name or Path(name).is_file()


def check_supported(config: Any, source: str) -> None:
    """Raise UnsupportedModelError unless some adapter covers this config (its model_type and its options)."""
    try:
        adapter_for_config(config)
    except NotImplementedError as err:
        model_type = getattr(config, "model_type", None)
        raise UnsupportedModelError(
            f"digsite cannot hook {source!r}, a {model_type!r} model. {err} "
            "Nothing was downloaded or loaded beyond its config."
        ) from None


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_VERIFIED: set[tuple[str, int, int]] = set()


def verify_shipped_weights(folder: Path) -> None:
    """Check every weights file in a shipped folder against the sha256 its card.md records.

    Once per file per process (keyed by path, size and modification time, so a file
    replaced later is checked again).
    """
    card_path = folder / "card.md"
    card = card_path.read_text() if card_path.exists() else ""
    for weights in sorted(folder.glob("*.safetensors")):
        stat = weights.stat()
        key = (str(weights), stat.st_size, stat.st_mtime_ns)
        if key in _VERIFIED:
            continue
        recorded = re.search(rf"{re.escape(weights.name)} sha256: `([0-9a-f]{{64}})`", card)
        if recorded is None:
            raise CorruptWeightsError(f"{weights} has no sha256 recorded in {card_path}: it cannot be verified.")
        digest = _sha256_of(weights)
        if digest != recorded[1]:
            raise CorruptWeightsError(
                f"{weights} is not the file that was shipped (sha256 {digest[:12]}…, its card records "
                f"{recorded[1][:12]}…). Reinstall the course package (`pip install --force-reinstall -e .` in a "
                f"checkout), or retrain it with `python -m digsite.organisms train {folder.name}`."
            )
        _VERIFIED.add(key)


def _into_memory(model: nn.Module) -> None:
    """Copy every parameter and buffer off its memory-mapped file (tied weights stay tied)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.clone()


def _check_tokenizer(tokenizer: Any, model: nn.Module, source: str) -> None:
    """A tokenizer whose ids do not fit the model's embedding is an error, not a silent mismatch."""
    rows = model.get_input_embeddings().num_embeddings
    size = len(tokenizer)
    if size > rows or size < rows // 2:
        raise ValueError(
            f"The tokenizer loaded for {source!r} has {size} tokens but the model's embedding has {rows} rows: "
            "they do not belong together. Put the model's own tokenizer files in the folder, or load the model "
            "yourself and pass its tokenizer to digsite.wrap(model, tokenizer)."
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
    """Hook points on an already-loaded Hugging Face causal LM (the families in docs/models.md).

    A model left in training mode (dropout on) would give two different caches for one
    input: it is put in eval mode, with a warning.
    """
    if hf_model.training:
        warnings.warn(
            "wrap(): the model was in training mode (dropout on), so two runs on one input would differ; "
            "it is now in eval mode. Call model.train() yourself if you really want dropout.",
            stacklevel=2,
        )
        hf_model.eval()
    return HookedModel(hf_model, tokenizer)


def _load_folder(folder: Path, shipped: bool = False) -> tuple[nn.Module, object]:
    """A local checkpoint folder: config checked first, tokenizer files required."""
    check_supported(AutoConfig.from_pretrained(str(folder)), str(folder))
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder} holds no tokenizer files (one of {', '.join(TOKENIZER_FILES)}). Save the tokenizer there "
            "(tokenizer.save_pretrained(folder)), or load the model yourself and call digsite.wrap(model, tokenizer)."
        )
    if shipped:
        verify_shipped_weights(folder)
    model, tokenizer = _from_pretrained(folder)
    if shipped:
        _into_memory(model)
    return model, tokenizer


def _load_hub(name: str) -> tuple[nn.Module, object]:
    """A hub name: the local cache first; then, when the hub answers, a bounded download."""
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except OSError:
        config = None
    if config is not None:
        check_supported(config, name)
        try:
            return _from_pretrained(name, local_files_only=True)
        except OSError:
            pass  # the config is cached but not the weights
    if not hub_reachable():
        raise OfflineError(_offline_message(name))
    config = _with_deadline(lambda: AutoConfig.from_pretrained(name), CONFIG_DEADLINE, f"Fetching {name!r}'s config")
    check_supported(config, name)
    return _with_deadline(lambda: _from_pretrained(name), DOWNLOAD_DEADLINE, f"Downloading {name!r}")


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
        model, tokenizer = _load_folder(organism_path(name), shipped=True)
    elif Path(name).expanduser().is_dir():
        model, tokenizer = _load_folder(Path(name).expanduser())
    elif _looks_like_path(name):
        raise FileNotFoundError(
            f"There is no folder {name!r} (looked in {Path.cwd()}). Check the path, or pass a bundled "
            f"organism's name ({', '.join(organism_names())}) or a hub name such as 'gpt2'."
        )
    else:
        model, tokenizer = _load_hub(name)
    if tokenizer is not None:
        _check_tokenizer(tokenizer, model, name)
    model.to(device=device or default_device(), dtype=dtype)
    model.eval()
    return wrap(model, tokenizer)
