"""HookedModel against each architecture's own forward pass, on small random models (no downloads)."""

from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)

from digsite import transformers_compat as compat
from digsite.adapters import in_out_weight
from digsite.hooks import Hook, HookedModel, HookError
from digsite.norms import affine, norm_weight, normalize

VOCAB = 61
SMALL = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=48,
    vocab_size=VOCAB,
    max_position_embeddings=64,
)
TF = Version(transformers.__version__)


def _config(class_name: str, **kwargs):
    """A config of a class this transformers release may lack (Qwen3 came in 4.51, Gemma 3 in 4.50)."""
    cls = getattr(transformers, class_name, None)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {class_name}")
    return cls(**kwargs)


def _since(version: str, make: Callable[[], object]) -> Callable[[], object]:
    """A config only from a release on (GPT-J's and OPT's attention use the registry from 5.24 and 4.52)."""

    def config():
        if TF < Version(version):
            pytest.skip(f"needs transformers >= {version}")
        return make()

    return config


GEMMA = dict(SMALL, head_dim=8, num_key_value_heads=2)
CONFIGS = {
    "gpt2": lambda: GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=VOCAB),
    "neox_parallel": lambda: GPTNeoXConfig(**SMALL, rotary_pct=0.25, use_parallel_residual=True),
    "neox_sequential": lambda: GPTNeoXConfig(**SMALL, use_parallel_residual=False),
    "llama": lambda: LlamaConfig(**SMALL),
    "qwen2_gqa": lambda: Qwen2Config(**SMALL, num_key_value_heads=2),
    "mistral_gqa": lambda: MistralConfig(**SMALL, num_key_value_heads=1),
    "gemma": lambda: _config("GemmaConfig", **GEMMA),
    # soft caps small enough to bite, a window shorter than the prompts, a query scale that is not d_head
    "gemma2": lambda: _config(
        "Gemma2Config",
        **GEMMA,
        query_pre_attn_scalar=20,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        sliding_window=4,
    ),
    "gemma3": lambda: _config(
        "Gemma3TextConfig", **GEMMA, sliding_window=4, layer_types=["sliding_attention", "full_attention"]
    ),
    "qwen3": lambda: _config("Qwen3Config", **GEMMA),
    "olmo2": lambda: _config("Olmo2Config", **SMALL, pad_token_id=0),
    "phi3": lambda: _config("Phi3Config", **SMALL, num_key_value_heads=2, pad_token_id=0),
    "gptj": _since(
        "5.24.0",
        lambda: _config("GPTJConfig", n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=VOCAB, rotary_dim=4),
    ),
    "opt": _since(
        "4.52.0",
        lambda: _config(
            "OPTConfig",
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            ffn_dim=48,
            vocab_size=VOCAB,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        ),
    ),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def hm(request) -> HookedModel:
    hm = HookedModel(random_model(CONFIGS[request.param]()))
    _IMPLEMENTATIONS[id(hm.model)] = hm.model.config._attn_implementation
    return hm


_IMPLEMENTATIONS: dict[int, str] = {}  # each random model's own attention implementation (Gemma 2: eager)


def random_model(config) -> torch.nn.Module:
    """A random model whose norm weights/biases are not 1/0, so applying them is tested too."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return model


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))


def assert_no_hooks(hm: HookedModel, impl: str | None = None) -> None:
    """None of our hooks left (transformers installs its own when output_hidden_states is used)."""
    impl = impl or _IMPLEMENTATIONS.get(id(hm.model), "sdpa")
    for module in hm.model.modules():
        for registered in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks):
            assert not [fn for fn in registered.values() if fn.__module__.startswith("digsite")]
    assert hm.model.config._attn_implementation == impl
    assert not compat._ATTN_CALLBACKS


def test_resid_post_matches_hidden_states_and_logits_unchanged(hm, tokens):
    with torch.no_grad():
        out = hm.model(tokens, output_hidden_states=True)
    logits, cache = hm.run_with_cache(tokens)
    torch.testing.assert_close(logits, out.logits)
    n = hm.cfg.n_layers
    for l in range(n - 1):
        torch.testing.assert_close(cache["resid_post", l], out.hidden_states[l + 1])
    # Hugging Face's last hidden state is after the final norm (its weight and bias included)
    torch.testing.assert_close(cache["ln_final.hook_out"], out.hidden_states[n])
    torch.testing.assert_close(cache["resid_pre", 0], out.hidden_states[0])
    assert_no_hooks(hm)


def allowed(hm: HookedModel, layer: int, n: int) -> torch.Tensor:
    """(n, n) True where a query may attend: causal, and within the window on local (sliding-window) layers."""
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    if layer in hm.cfg.local_layers:
        mask &= ~torch.ones(n, n, dtype=torch.bool).tril(-hm.cfg.sliding_window)
    return mask


def test_attention_internals_reproduce_attention(hm, tokens):
    """TransformerLens's arithmetic from the cached q, k, v: scale, soft cap, causal and local masks, W_O."""
    _, cache = hm.run_with_cache(tokens)
    cfg = hm.cfg
    groups = cfg.n_heads // cfg.n_kv_heads
    for l in range(cfg.n_layers):
        q, k, v = cache["q", l], cache["k", l], cache["v", l]
        assert q.shape == (*tokens.shape, cfg.n_heads, cfg.d_head)
        assert k.shape == v.shape == (*tokens.shape, cfg.n_kv_heads, cfg.d_head)
        k, v = k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / cfg.attn_scale
        if cfg.attn_scores_soft_cap:
            scores = cfg.attn_scores_soft_cap * torch.tanh(scores / cfg.attn_scores_soft_cap)
        scores = scores.masked_fill(~allowed(hm, l, tokens.shape[1]), float("-inf"))
        torch.testing.assert_close(cache["attn_scores", l], scores)
        pattern = scores.softmax(-1)
        torch.testing.assert_close(cache["pattern", l], pattern)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        torch.testing.assert_close(cache["z", l], z)
        heads = torch.einsum("bphd,hdm->bpm", z, hm.W_O[l]) + hm.b_O[l]
        if cfg.post_norms:  # the heads' sum is the post-attention norm's input; attn_out is its output
            post = f"blocks.{l}.ln1_post.hook_"
            torch.testing.assert_close(cache[post + "normalized"] * cache[post + "scale"], heads)
        else:
            torch.testing.assert_close(cache["attn_out", l], heads)


def test_hooked_attention_masks_as_every_transformers_version_asks():
    """5.x passes a full additive causal mask; 4.4x passes none (SDPA's is_causal) or a padding-only one."""
    torch.manual_seed(0)
    module = torch.nn.Module().eval()
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    full = torch.zeros(6, 6).masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), torch.finfo(torch.float32).min)
    for mask in (full.expand(2, 1, 6, 6), None, torch.zeros(2, 1, 1, 6)):
        z, pattern = compat.digsite_attention(module, q, k, v, mask)
        torch.testing.assert_close(z, expected)
        assert pattern[..., 0, 1:].abs().max() == 0  # the first query sees only itself
    # with cached keys (query positions 4, 5 of 6) the causal mask is offset
    z, _ = compat.digsite_attention(module, q[:, :, 4:], k, v, None)
    torch.testing.assert_close(z, expected[:, 4:])


def test_weight_matrices_match_activations(hm, tokens):
    """Differences between positions cancel biases: v_i - v_j == (x_i - x_j) @ W_V."""
    _, cache = hm.run_with_cache(tokens)
    x = cache["blocks.0.ln1.hook_out" if "blocks.0.ln1.hook_out" in cache else "blocks.0.hook_resid_pre"]  # OLMo-2
    dx = x[:, 1] - x[:, 0]
    dv = cache["v", 0][:, 1] - cache["v", 0][:, 0]
    torch.testing.assert_close(dv, torch.einsum("bm,hmd->bhd", dx, hm.W_V[0]))
    dq = cache["q", 0][:, 1] - cache["q", 0][:, 0]
    expected_dq = torch.einsum("bm,hmd->bhd", dx, hm.W_Q[0])
    if hm.cfg.has_pos_embed:  # no rotary: q is exactly linear
        torch.testing.assert_close(dq, expected_dq)
    elif hm.cfg.architecture == "gpt_neox" and _rotary_fraction(hm.model.config) < 1:
        rotary = int(hm.cfg.d_head * _rotary_fraction(hm.model.config))
        torch.testing.assert_close(dq[..., rotary:], expected_dq[..., rotary:])


def _rotary_fraction(config) -> float:
    """NeoX's rotary fraction: `rope_parameters` in transformers 5, `rotary_pct` in 4.x."""
    params = getattr(config, "rope_parameters", None) or {}
    return params.get("partial_rotary_factor", getattr(config, "rotary_pct", 1.0))


def test_zero_ablating_a_head_equals_zeroing_its_weights(hm, tokens):
    layer, head, d = 1, 2, hm.cfg.d_head

    def ablate(z, hook):
        z = z.clone()
        z[:, :, head] = 0
        return z

    ablated = hm.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
    by_hand = copy.deepcopy(hm.model)
    o_proj = by_hand.get_submodule(hm.adapter.blocks)[layer].get_submodule(hm.adapter.o_proj)
    with torch.no_grad():
        in_out_weight(o_proj)[head * d : (head + 1) * d] = 0
        expected = by_hand(tokens).logits
    torch.testing.assert_close(ablated, expected)
    # the same through per-head results
    result_ablated = hm.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_result", ablate)])
    torch.testing.assert_close(result_ablated, expected)
    assert_no_hooks(hm)


def test_pattern_replacement_flows_to_z(hm, tokens):
    uniform = torch.ones(tokens.shape[1], tokens.shape[1]).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    names = ["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]
    _, cache = hm.run_with_cache(tokens, names)
    with hm.hooks([("blocks.0.attn.hook_pattern", lambda p, hook: uniform.expand_as(p))]):
        _, cache2 = hm.run_with_cache(tokens, names)
    v = cache["v", 0].repeat_interleave(hm.cfg.n_heads // hm.cfg.n_kv_heads, dim=2)
    torch.testing.assert_close(cache2["z", 0], torch.einsum("qk,bkhd->bqhd", uniform, v))
    assert_no_hooks(hm)


def test_replacing_resid_mid_changes_residual_and_mlp(hm, tokens):
    if hm.cfg.parallel_attn_mlp:
        assert "blocks.0.hook_resid_mid" not in hm.hook_names
        return
    new = torch.randn(*tokens.shape, hm.cfg.d_model)
    with hm.hooks([("blocks.0.hook_resid_mid", lambda x, hook: new)]):
        _, cache = hm.run_with_cache(
            tokens, ["blocks.0.mlp.hook_pre", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]
        )
    block, a = hm._blocks[0], hm.adapter
    with torch.no_grad():  # the MLP's first projection reads the new resid_mid (through ln2, if there is one)
        pre = block.get_submodule(a.mlp_in)(block.get_submodule(a.ln2)(new) if a.ln2 else new)
    torch.testing.assert_close(cache["blocks.0.mlp.hook_pre"], pre.chunk(2, -1)[0] if a.mlp_fused else pre)
    torch.testing.assert_close(cache["resid_post", 0], new + cache["mlp_out", 0])


def _first_norm(hm: HookedModel) -> tuple[str, str, torch.nn.Module]:
    """A norm whose input is a hook point: block 0's ln1 (its input resid_pre), or the final norm (OLMo-2)."""
    if "blocks.0.ln1.hook_scale" in hm.hook_names:
        return "blocks.0.ln1", "blocks.0.hook_resid_pre", hm.norm_module(0, "ln1")
    return "ln_final", f"blocks.{hm.cfg.n_layers - 1}.hook_resid_post", hm.norm_module(None)


def test_scale_is_transformer_lens_divisor_and_replaceable(hm, tokens):
    norm, input_name, module = _first_norm(hm)
    _, cache = hm.run_with_cache(tokens, [input_name, f"{norm}.hook_scale", f"{norm}.hook_normalized"])
    x, scale = cache[input_name], cache[f"{norm}.hook_scale"]
    if hm.cfg.normalization_type == "LN":
        x = x - x.mean(-1, keepdim=True)
    assert scale.shape == (*tokens.shape, 1)
    torch.testing.assert_close(scale, (x.pow(2).mean(-1, keepdim=True) + hm.cfg.eps).sqrt())
    torch.testing.assert_close(cache[f"{norm}.hook_normalized"], x / scale)  # before weight and bias, as in TL
    bias = module.bias if getattr(module, "bias", None) is not None else 0
    _, before = hm.run_with_cache(tokens, [f"{norm}.hook_out"])
    with hm.hooks([(f"{norm}.hook_scale", lambda s, hook: 2 * s)]):
        _, doubled = hm.run_with_cache(tokens, [f"{norm}.hook_normalized", f"{norm}.hook_out"])
    torch.testing.assert_close(doubled[f"{norm}.hook_normalized"], cache[f"{norm}.hook_normalized"] / 2)
    torch.testing.assert_close(doubled[f"{norm}.hook_out"], (before[f"{norm}.hook_out"] - bias) / 2 + bias)


def test_normalized_is_before_weight_and_bias_and_replaceable(hm, tokens):
    """Every norm of a block: its output (for a post-norm: attn_out / mlp_out) is normalized * weight + bias."""
    outputs = {"ln1": "ln1.hook_out", "ln2": "ln2.hook_out", "ln1_post": "hook_attn_out", "ln2_post": "hook_mlp_out"}
    present = [n for n in outputs if f"blocks.0.{n}.hook_normalized" in hm.hook_names]
    assert present and ("ln1_post" in present) == hm.cfg.post_norms
    for which in present:
        norm, out = f"blocks.0.{which}.hook_normalized", f"blocks.0.{outputs[which]}"
        module = hm.norm_module(0, which)
        bias = module.bias if getattr(module, "bias", None) is not None else 0
        _, cache = hm.run_with_cache(tokens, [norm, out])
        torch.testing.assert_close(cache[out], cache[norm] * norm_weight(module) + bias)
        with hm.hooks([(norm, lambda n, hook: -n)]):
            _, flipped = hm.run_with_cache(tokens, [out])
        torch.testing.assert_close(flipped[out], -cache[norm] * norm_weight(module) + bias)


def test_pos_embed_has_the_batch_dim_and_scores_are_minus_inf_where_masked(hm, tokens):
    _, cache = hm.run_with_cache(
        tokens, ["hook_embed", "blocks.0.attn.hook_attn_scores"] + (["hook_pos_embed"] if hm.cfg.has_pos_embed else [])
    )
    if hm.cfg.has_pos_embed:
        assert cache["hook_pos_embed"].shape == cache["hook_embed"].shape == (*tokens.shape, hm.cfg.d_model)
        with hm.hooks([("hook_pos_embed", lambda p, hook: p * 0)]):
            _, zeroed = hm.run_with_cache(tokens, ["blocks.0.hook_resid_pre"])
        torch.testing.assert_close(zeroed["resid_pre", 0], cache["hook_embed"])
    scores = cache["attn_scores", 0]
    masked = ~allowed(hm, 0, tokens.shape[1])
    assert torch.isneginf(scores[..., masked]).all() and torch.isfinite(scores[..., ~masked]).all()


def test_gradients_by_name(hm, tokens):
    target = 5

    def metric(logits):
        return logits[0, -1, target]

    names = ["ln_final.hook_normalized", "ln_final.hook_out", "blocks.1.hook_resid_pre"]
    names += ["hook_embed", "hook_pos_embed"] if hm.cfg.has_pos_embed else []
    value, cache, grads = hm.run_with_cache_and_grads(tokens, metric, names)
    if hm.cfg.has_pos_embed:  # both are added into resid_pre 0, so they get the same gradient
        torch.testing.assert_close(grads["hook_pos_embed"], grads["hook_embed"])
    expected = torch.zeros_like(cache["ln_final.hook_out"])
    expected[0, -1] = hm.W_U[:, target]
    torch.testing.assert_close(grads["ln_final.hook_out"], expected)
    torch.testing.assert_close(grads["ln_final.hook_normalized"], expected * norm_weight(hm.norm_module(None)))
    assert all(p.grad is None for p in hm.model.parameters())
    seen = {}

    def save_grad(grad, hook):
        seen[hook.name] = grad

    with hm.hooks(bwd_hooks=[("blocks.1.hook_resid_pre", save_grad)]):
        metric(hm(tokens)).backward()
    hm.model.zero_grad(set_to_none=True)
    torch.testing.assert_close(seen["blocks.1.hook_resid_pre"], grads["resid_pre", 1])
    assert_no_hooks(hm)


def test_hooks_removed_after_exception(hm, tokens):
    def boom(x, hook):
        raise RuntimeError("inside hook")

    with pytest.raises(RuntimeError, match="inside hook"):
        hm.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.attn.hook_pattern", boom), ("blocks.0.hook_resid_post", lambda x, h: x)]
        )
    assert_no_hooks(hm)


def test_hook_names_per_architecture(hm):
    names = set(hm.hook_names)
    assert ("hook_pos_embed" in names) == hm.cfg.has_pos_embed
    assert ("blocks.0.mlp.hook_pre_linear" in names) == hm.cfg.gated_mlp
    for name in [
        "hook_embed",
        "blocks.1.attn.hook_q",
        "blocks.1.attn.hook_attn_scores",
        "blocks.1.mlp.hook_post",
        "ln_final.hook_scale",
    ]:
        assert name in names
    assert not any(n.endswith("hook_result") for n in hm.names(None))
    assert hm.names(lambda n: n.endswith("resid_post")) == [
        f"blocks.{l}.hook_resid_post" for l in range(hm.cfg.n_layers)
    ]


def test_bad_inputs_raise_helpful_errors(hm, tokens):
    with pytest.raises(HookError, match="blocks.0.hook_resid_pre"):
        hm.run_with_cache(tokens, ["blocks.0.hook_resid_pr"])
    with pytest.raises(HookError, match=r"blocks.0.hook_mlp_out.*\(2, 9, 3\).*\(2, 9, 32\)"):
        hm.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, hook: x[..., :3])])
    assert_no_hooks(hm)
    # 1-D and int32 tokens are accepted and moved to the model's device and dtype
    torch.testing.assert_close(hm(tokens[0].int()), hm(tokens[:1]))


def test_hook_object_and_nested_contexts(hm, tokens):
    layers = []
    with hm.hooks([(lambda n: n.endswith("hook_attn_out"), lambda x, hook: layers.append(hook.layer()))]):
        with hm.hooks([("blocks.0.hook_attn_out", lambda x, hook: torch.zeros_like(x))]):
            _, cache = hm.run_with_cache(tokens, ["blocks.0.hook_attn_out", "hook_embed"])
    assert layers == list(range(hm.cfg.n_layers))
    assert cache["attn_out", 0].abs().max() == 0  # the outer ablation is seen by the inner cache
    assert Hook("hook_embed").layer() is None
    assert_no_hooks(hm)


def test_gpt2_small_sized_model():
    """A GPT-2-small-sized model: every layer's resid_post against hidden_states, logits unchanged."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=1000)).eval()
    hm = HookedModel(model)
    assert (hm.cfg.n_layers, hm.cfg.d_model, hm.cfg.n_heads, hm.cfg.d_mlp) == (12, 768, 12, 3072)
    tokens = torch.randint(0, 1000, (1, 12))
    with torch.no_grad():
        out = model(tokens, output_hidden_states=True)
    logits, cache = hm.run_with_cache(tokens)
    torch.testing.assert_close(logits, out.logits)
    for l in range(11):
        torch.testing.assert_close(cache["resid_post", l], out.hidden_states[l + 1])
    assert_no_hooks(hm)


def test_unsupported_architecture_lists_supported():
    from transformers import BloomConfig

    model = AutoModelForCausalLM.from_config(BloomConfig(n_layer=1, hidden_size=16, n_head=2, vocab_size=20))
    with pytest.raises(NotImplementedError, match="gpt2.*gpt_neox.*llama"):
        HookedModel(model)


def test_text_in_and_out():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<bos>", "the", "cat", "sat", "on", "mat"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<bos>", pad_token="<pad>")
    hm = HookedModel(random_model(CONFIGS["llama"]()), tok)
    assert hm.to_tokens("the cat sat").tolist() == [[1, 2, 3, 4]]
    assert hm.to_tokens(["the cat", "the cat sat on"], prepend_bos=False).tolist() == [[2, 3, 0, 0], [2, 3, 4, 5]]
    assert hm.to_str_tokens("the cat") == ["<bos>", "the", "cat"]
    assert hm.to_string(torch.tensor([2, 3])) == "the cat"
    torch.testing.assert_close(hm("the cat"), hm(torch.tensor([[1, 2, 3]])))
    logits, cache = hm.run_with_cache(["the cat", "the cat sat on"], "blocks.0.hook_resid_post")
    assert logits.shape == (2, 5, VOCAB) and list(cache) == ["blocks.0.hook_resid_post"]
    assert hm("the cat sat", return_type="loss").ndim == 0
    # padding is left out of a batch's loss: the mean over both texts' real next-token losses
    short, long = hm("the cat", return_type="loss"), hm("the cat sat on", return_type="loss")
    torch.testing.assert_close(hm(["the cat", "the cat sat on"], return_type="loss"), (2 * short + 4 * long) / 6)
    text = hm.generate("the cat", max_new_tokens=2, do_sample=False)
    assert isinstance(text, str) and text.startswith("the cat") and "<bos>" not in text


def test_a_hook_returning_the_wrong_dtype_is_named():
    from digsite.hooks import HookError

    hm = _tiny_gpt2_for_contexts()
    with pytest.raises(HookError, match=r"Hook on 'blocks.0.hook_resid_pre' returned a torch.float64 tensor"):
        hm.run_with_hooks(torch.tensor([[1, 2, 3]]), [("blocks.0.hook_resid_pre", lambda x, hook: x.double())])


def _tiny_gpt2_for_contexts():
    from transformers import GPT2Config, GPT2LMHeadModel

    from digsite.models import wrap

    torch.manual_seed(0)
    return wrap(GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=20)).eval())


def test_hook_contexts_closed_out_of_order_restore_the_attention_implementation():
    hm = _tiny_gpt2_for_contexts()
    original = hm.model.config._attn_implementation
    seen = []
    first = hm.hooks([("blocks.0.attn.hook_pattern", lambda x, hook: None)])
    second = hm.hooks([("blocks.1.attn.hook_pattern", lambda x, hook: seen.append(hook.name))])
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first one closes while the second is still open
    hm(torch.tensor([[1, 2, 3]]))
    assert seen == ["blocks.1.attn.hook_pattern"]  # the open context's attention hook still runs
    second.__exit__(None, None, None)
    assert hm.model.config._attn_implementation == original


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_matches_each_prompt_alone(hm, tokens, side):
    """Padding (with its attention mask) changes nothing at the real tokens: logits, residuals, patterns."""
    short = tokens[1, :6]
    pad = torch.zeros(3, dtype=tokens.dtype)
    row, mask = (
        (torch.cat([short, pad]), [1] * 6 + [0] * 3)
        if side == "right"
        else (torch.cat([pad, short]), [0] * 3 + [1] * 6)
    )
    ids, mask = torch.stack([tokens[0], row]), torch.tensor([[1] * 9, mask])
    names = ["blocks.1.hook_resid_post", "blocks.1.attn.hook_pattern", "blocks.0.hook_mlp_out"]
    logits, cache = hm.run_with_cache(ids, names, attention_mask=mask)
    alone_logits, alone = hm.run_with_cache(short[None], names)
    real = mask[1].bool()
    torch.testing.assert_close(logits[1, real], alone_logits[0])
    for name in names[::2]:
        torch.testing.assert_close(cache[name][1, real], alone[name][0])
    pattern = cache["blocks.1.attn.hook_pattern"][1][:, real][:, :, real]
    torch.testing.assert_close(pattern, alone["blocks.1.attn.hook_pattern"][0])
    full_logits = hm.run_with_cache(tokens[:1], names[:1])[0]
    torch.testing.assert_close(logits[0], full_logits[0])  # the unpadded row is unchanged by its neighbour
    assert_no_hooks(hm)


def test_embedding_scale_and_soft_caps(hm, tokens):
    """hook_embed is what enters the stream (Gemma: W_E * sqrt(d_model)); logits are soft-capped where the model caps them."""
    logits, cache = hm.run_with_cache(tokens, ["hook_embed", "ln_final.hook_out"])
    torch.testing.assert_close(cache["hook_embed"], hm.W_E[tokens] * hm.cfg.embed_scale)
    assert hm.cfg.embed_scale == (hm.cfg.d_model**0.5 if hm.cfg.architecture.startswith("gemma") else 1.0)
    unembedded = cache["ln_final.hook_out"] @ hm.W_U + hm.b_U
    cap = hm.cfg.output_logits_soft_cap
    torch.testing.assert_close(logits, cap * torch.tanh(unembedded / cap) if cap else unembedded)


def test_patch_sweeps_with_the_key_value_prefix_equal_the_loop(hm, tokens):
    """The base run's cache, cut at the first patched position, is read back right by every family."""
    from digsite import patching as P

    source = tokens.clone()
    source[:, 4] = (tokens[:, 4] + 1) % VOCAB
    names = [f"blocks.{l}.hook_resid_pre" for l in range(hm.cfg.n_layers)]
    patches = [P.Patch(n, (p,)) for n in names for p in range(3, 6)]
    values = P._cache(hm, source, names)

    def metric(logits):
        return logits[:, -1, 0].mean()

    loop = P.patch_loop(hm, tokens, values, patches, metric)
    if hm.cfg.sliding_window and hm.cfg.sliding_window < tokens.shape[1] and 0 in hm.cfg.local_layers:
        try:  # some releases keep a local layer's whole prompt, some only its window (then: a clear error)
            sweep = P.patch_sweep(hm, tokens, values, patches, metric, max_rows=4)
        except ValueError as err:
            assert "reuse_positions=False" in str(err)
            sweep = P.patch_sweep(hm, tokens, values, patches, metric, max_rows=4, reuse_positions=False)
    else:
        sweep = P.patch_sweep(hm, tokens, values, patches, metric, max_rows=4)
    torch.testing.assert_close(sweep, loop, atol=1e-5, rtol=1e-5)
    assert_no_hooks(hm)


def test_the_norm_arithmetic_of_a_norm_without_weight_is_its_output():
    """A LayerNorm built without affine parameters has no weight: norm_weight is None, affine adds nothing."""
    ln = torch.nn.LayerNorm(6, elementwise_affine=False)
    x = torch.randn(3, 6)
    scale = ((x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()
    assert norm_weight(ln) is None
    torch.testing.assert_close(affine(normalize(x, scale, "LN"), ln), ln(x))
