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
from digsite.stand_ins import STAND_IN_ENV


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
    monkeypatch.delenv(STAND_IN_ENV, raising=False)  # the suite's stand-in switch (set when notebooks run)
    calls = []

    def from_cache(source, **kwargs):
        calls.append(kwargs)
        return AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30)), None

    monkeypatch.setattr(models, "_from_pretrained", from_cache)
    monkeypatch.setattr(models.AutoConfig, "from_pretrained", lambda source, **kw: GPT2Config())
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
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30)).eval()
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
    torch.testing.assert_close(
        cache.accumulated_resid(apply_ln=True)[-1] @ hm.W_U + hm.b_U, logits, atol=1e-4, rtol=1e-4
    )


def _word_tokenizer(words: list[str]):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=words[0])


def _tiny_checkpoint(folder, vocab_size: int = 3, tokenizer: bool = True) -> None:
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=vocab_size, bos_token_id=0, eos_token_id=0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    if tokenizer:
        _word_tokenizer(["<bos>", "a", "b"]).save_pretrained(folder)


def test_wrap_puts_a_training_model_in_eval_mode_with_a_warning():
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30, resid_pdrop=0.5))
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        hm = wrap(model)
    assert not hm.model.training
    tokens = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(hm.run_with_cache(tokens)[0], hm.run_with_cache(tokens)[0])


def test_a_missing_local_path_says_so():
    with pytest.raises(FileNotFoundError, match="There is no folder './no/such/checkpoint'"):
        load_model("./no/such/checkpoint")


def test_a_folder_without_tokenizer_files_is_an_error(tmp_path):
    _tiny_checkpoint(tmp_path, tokenizer=False)
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_model(str(tmp_path), device="cpu")


def test_a_tokenizer_that_does_not_fit_the_vocabulary_is_an_error(tmp_path):
    _tiny_checkpoint(tmp_path, vocab_size=30)  # a 3-word tokenizer for 30 embedding rows
    with pytest.raises(ValueError, match="3 tokens but the model's embedding has 30 rows"):
        load_model(str(tmp_path), device="cpu")


def test_an_unsupported_architecture_is_refused_from_its_config_alone(tmp_path):
    from transformers import BloomConfig

    BloomConfig(n_layer=1, hidden_size=16, n_head=2, vocab_size=30).save_pretrained(
        tmp_path
    )  # a config and nothing else: refused before any weights are looked for
    with pytest.raises(models.UnsupportedModelError, match="'bloom' model.*Supported model_types: .*gemma2.*gpt2"):
        load_model(str(tmp_path))


def test_an_unsupported_variant_of_a_supported_family_is_refused_from_its_config(tmp_path):
    from transformers import OPTConfig

    OPTConfig(  # opt-350m's layout: norms after the residual additions
        num_hidden_layers=1,
        hidden_size=16,
        num_attention_heads=2,
        ffn_dim=32,
        vocab_size=30,
        do_layer_norm_before=False,
    ).save_pretrained(tmp_path)
    with pytest.raises(models.UnsupportedModelError, match="do_layer_norm_before=False"):
        load_model(str(tmp_path))


def test_every_family_in_the_docs_readme_and_chapter_0():
    """docs/models.md, the README and chapter 0 name every family digsite can hook."""
    from pathlib import Path

    from digsite.adapters import ADAPTERS

    root = Path(__file__).resolve().parent.parent
    for path in ("docs/models.md", "README.md", "course/00_orientation.py"):
        text = root.joinpath(path).read_text()
        for adapter in ADAPTERS:
            for name in adapter.family.replace(" and ", ", ").split(", "):
                name = name.split(" (")[0].removesuffix(" 2").removesuffix(" 3")
                assert name in text, f"{path} does not name {name} ({adapter.family})"


def _stalling_server():
    """A local endpoint that answers `HEAD /` at once and stalls on every other request."""
    import http.server
    import threading

    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            if self.path != "/":
                release.wait(5)
            self.send_response(200)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, release


def test_a_hub_that_answers_the_root_but_stalls_is_not_called_reachable(monkeypatch):
    server, release = _stalling_server()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        # The stalled answer would come after 5 s (a 200): "unreachable" means the probe gave up first.
        assert not hub_reachable(timeout=0.5)
    finally:
        release.set()
        server.shutdown()


def test_a_stalled_download_fails_at_its_deadline_saying_what_was_tried():
    finished = threading.Event()  # the work would finish after 3 s: raising means the deadline came first
    with pytest.raises(models.HubTimeoutError, match="Downloading 'x/y' did not finish within 0 s.*stalled"):
        models._with_deadline(lambda: finished.wait(3), 0.3, "Downloading 'x/y'")
    assert not finished.is_set()
    with pytest.raises(KeyError):  # an error inside the work reaches the caller unchanged
        models._with_deadline(lambda: {}["missing"], 5, "work")


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A private copy of the bundled organisms folder holding only `induction`, as if shipped."""
    import shutil

    from digsite import organisms

    shutil.copytree(organisms.organism_path("induction"), tmp_path / "induction")
    monkeypatch.setattr(organisms, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(models, "_VERIFIED", set())
    return tmp_path / "induction"


def test_shipped_weights_are_verified_once_and_copied_into_memory(shipped_copy, monkeypatch):
    from safetensors.torch import load_file, save_file

    hashed = []
    real_sha = models._sha256_of
    monkeypatch.setattr(models, "_sha256_of", lambda path: hashed.append(path) or real_sha(path))
    hm = load_model("induction", device="cpu")
    load_model("induction", device="cpu")
    assert len(hashed) == 1  # once per file per process
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6, 7]])
    before = hm.run_with_cache(tokens)[0]
    weights = shipped_copy / "model.safetensors"
    zeros = {k: torch.zeros_like(v) for k, v in load_file(weights).items()}
    save_file(zeros, weights)  # the file changes under a loaded model
    torch.testing.assert_close(hm.run_with_cache(tokens)[0], before)  # not memory-mapped
    with pytest.raises(models.CorruptWeightsError, match="not the file that was shipped"):
        load_model("induction", device="cpu")


@pytest.fixture(scope="module")
def toylang():
    return load_model("toylang", device="cpu")


def test_the_loss_leaves_out_padding_for_texts_and_masked_token_ids(toylang):
    short, long = "the cat is an animal", "when mary and john went to the store , john gave a drink to mary"
    alone = toylang(short, return_type="loss").item()
    rows = toylang._token_rows([short, long], prepend_bos=True)
    for left in (False, True):
        ids, mask = toylang._padded(rows, left=left), toylang._padding_mask(rows, left=left)
        both = toylang(ids, return_type="loss", attention_mask=mask).item()
        per_text = [toylang(t, return_type="loss").item() for t in (short, long)]
        n = [len(r) - 1 for r in rows]
        torch.testing.assert_close(both, (per_text[0] * n[0] + per_text[1] * n[1]) / sum(n), atol=1e-4, rtol=1e-4)
        unmasked = toylang(ids, return_type="loss").item()
        assert abs(unmasked - both) > 0.01  # counting the padding would have given another number
    torch.testing.assert_close(toylang([short], return_type="loss").item(), alone)


def test_batched_generation_continues_each_prompt_not_its_padding(toylang):
    prompts = ["the cat is an", "when mary and john went to the store , john gave a drink to"]
    together = toylang.generate(prompts, max_new_tokens=2, do_sample=False)
    alone = [toylang.generate(p, max_new_tokens=2, do_sample=False) for p in prompts]
    assert together == alone
    assert all("<pad>" not in text for text in together)


def test_multimodal_gemma3_is_refused_with_what_to_load_instead(tmp_path):
    import transformers

    if not hasattr(transformers, "Gemma3Config"):
        pytest.skip("transformers < 4.50 has no Gemma 3")
    transformers.Gemma3Config().save_pretrained(tmp_path)
    with pytest.raises(models.UnsupportedModelError, match="gemma3_text"):
        load_model(str(tmp_path))
