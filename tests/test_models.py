"""load_model / wrap: bundled organisms, local folders, the local HF cache, and failing fast offline."""

from __future__ import annotations

import threading
import urllib.request

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config

from digsite import models
from digsite.hooks import HookedModel
from digsite.models import OfflineError, hub_reachable, load_model, wrap
from digsite.organisms import organism_names


def test_default_device_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.default_device().type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert models.default_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.default_device().type == "cuda"


def test_offline_hub_name_fails_at_once_naming_the_bundled_models(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("HF_HUB_OFFLINE is set: the hub must not be probed")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)  # "at once": no probe, no download retries
    with pytest.raises(OfflineError) as err:
        load_model("digsite-tests/not-a-cached-model")
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "internet" in message
    for name in organism_names():
        assert name in message


def test_unreachable_hub_is_detected_within_the_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    never = threading.Event()

    def hangs(*args, **kwargs):  # a DNS lookup or a connection that never answers
        never.wait(60)
        raise OSError("released")

    monkeypatch.setattr(urllib.request, "urlopen", hangs)
    try:
        assert not hub_reachable(timeout=0.05)  # returns (False) although the probe is still waiting
    finally:
        never.set()


def test_a_cached_hub_model_loads_without_the_network(monkeypatch):
    calls = []

    def from_cache(source, **kwargs):
        calls.append(kwargs)
        return AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30)), None

    monkeypatch.setattr(models, "_from_pretrained", from_cache)
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("probed the network for a cached model"))
    hm = load_model("gpt2", device="cpu")
    assert calls == [{"local_files_only": True}] and not hm.model.training


def test_load_a_local_folder_with_device_and_dtype(tmp_path):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(tok_models.WordLevel({"<bos>": 0, "a": 1, "b": 2}, unk_token="<bos>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<bos>").save_pretrained(tmp_path)
    AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=3)).save_pretrained(tmp_path)
    hm = load_model(str(tmp_path), device="cpu", dtype=torch.float64)
    assert isinstance(hm, HookedModel) and hm.W_E.dtype == torch.float64 and hm.device.type == "cpu"
    logits, cache = hm.run_with_cache("a b a", "blocks.0.hook_resid_post")
    assert logits.shape == (1, 4, 3) and cache["resid_post", 0].dtype == torch.float64


def test_wrap_keeps_the_model_and_tokenizer():
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30))
    hm = wrap(model)
    assert hm.model is model and hm.tokenizer is None
    with pytest.raises(ValueError, match="without a tokenizer"):
        hm("some text")


@pytest.mark.parametrize("name", organism_names())
def test_bundled_organisms_load_and_hook(name):
    hm = load_model(name, device="cpu")
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, hm.cfg.d_vocab, (1, min(6, hm.cfg.n_ctx)), generator=gen)  # modadd has 3 positions
    with torch.no_grad():
        expected = hm.model(tokens).logits
    logits, cache = hm.run_with_cache(tokens)
    # Caching every name switches attention to eager (SDPA gives no pattern): float-level differences only.
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cache.accumulated_resid(apply_ln=True)[-1] @ hm.W_U + hm.b_U, logits, atol=1e-4, rtol=1e-4)
