"""ActivationCache algebra on small random models: decompositions add up to the model's own numbers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

from digsite.cache import ActivationCache, get_act_name
from digsite.hooks import HookedModel

VOCAB = 53
SMALL = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=48,
    vocab_size=VOCAB,
    max_position_embeddings=32,
)
CONFIGS = {
    "gpt2": lambda: GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=VOCAB),
    "neox_parallel": lambda: GPTNeoXConfig(**SMALL, rotary_pct=0.5),
    "llama": lambda: LlamaConfig(**SMALL, num_key_value_heads=2),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def run(request):
    """(model, tokens, logits, full cache) with norm weights and biases away from 1 and 0."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[request.param]()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    hm = HookedModel(model)
    tokens = torch.randint(0, VOCAB, (3, 7), generator=torch.Generator().manual_seed(2))
    logits, cache = hm.run_with_cache(tokens, names_filter=hm.hook_names)  # every name, hook_result too
    return hm, tokens, logits, cache


def final_bias(hm: HookedModel) -> torch.Tensor | int:
    bias = getattr(hm.norm_module(None), "bias", None)
    return bias if bias is not None else 0


def test_decompose_resid_sums_to_the_residual_stream(run):
    hm, _, _, cache = run
    stack, labels = cache.decompose_resid(return_labels=True)
    torch.testing.assert_close(stack.sum(0), cache["resid_post", -1])
    assert labels[0] == "embed" and labels[-1] == f"{hm.cfg.n_layers - 1}_mlp_out"
    torch.testing.assert_close(cache.decompose_resid(layer=1).sum(0), cache["resid_pre", 1])
    if not hm.cfg.parallel_attn_mlp:
        torch.testing.assert_close(cache.decompose_resid(layer=1, mlp_input=True).sum(0), cache["resid_mid", 1])


def test_final_norm_on_parts_adds_up_to_the_model_output(run):
    hm, _, logits, cache = run
    parts = cache.decompose_resid(apply_ln=True, pos_slice=-1)
    normalized = parts.sum(0) + final_bias(hm)
    torch.testing.assert_close(normalized, cache["ln_final.hook_out"][:, -1])
    torch.testing.assert_close(normalized @ hm.W_U + hm.b_U, logits[:, -1])


def test_accumulated_resid_is_the_logit_lens(run):
    hm, _, logits, cache = run
    n = hm.cfg.n_layers
    stack, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == [f"{l}_pre" for l in range(n)] + ["final_post"]
    torch.testing.assert_close(stack[-1] @ hm.W_U + hm.b_U, logits)
    torch.testing.assert_close(cache.accumulated_resid(pos_slice=[0, 2])[1], cache["resid_pre", 1][:, [0, 2]])
    # up to layer 1: through that block's ln1, with its cached scale
    up_to_1 = cache.accumulated_resid(layer=1, apply_ln=True)
    torch.testing.assert_close(up_to_1[-1], cache["blocks.1.ln1.hook_out"])
    _, mid_labels = cache.accumulated_resid(layer=1, incl_mid=True, return_labels=True)
    assert mid_labels == (["0_pre", "1_pre"] if hm.cfg.parallel_attn_mlp else ["0_pre", "0_mid", "1_pre"])


def test_stack_head_results_from_z_or_result(run):
    hm, _, _, cache = run
    cfg = hm.cfg
    stack, labels = cache.stack_head_results(return_labels=True)
    assert stack.shape[0] == cfg.n_layers * cfg.n_heads and labels[cfg.n_heads] == "L1H0"
    for l in range(cfg.n_layers):
        heads = stack[l * cfg.n_heads : (l + 1) * cfg.n_heads]
        torch.testing.assert_close(heads.sum(0) + hm.b_O[l], cache["attn_out", l])
        torch.testing.assert_close(heads.movedim(0, -2), cache["result", l])
    without_results = ActivationCache({k: v for k, v in cache.items() if "result" not in k}, hm)
    torch.testing.assert_close(without_results.stack_head_results(pos_slice=-1), stack[:, :, -1])


def test_logit_attrs_add_up_to_the_logit_difference(run):
    hm, _, logits, cache = run
    right, wrong = torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    parts = cache.decompose_resid(apply_ln=True, pos_slice=-1)
    attrs = cache.logit_attrs(parts, right, incorrect_tokens=wrong)
    assert attrs.shape == (parts.shape[0], 3)
    constant = final_bias(hm) @ (hm.W_U[:, right] - hm.W_U[:, wrong]) if hm.cfg.normalization_type == "LN" else 0
    expected = logits[:, -1].gather(1, right[:, None]) - logits[:, -1].gather(1, wrong[:, None])
    b_U = hm.b_U[right] - hm.b_U[wrong]
    torch.testing.assert_close(attrs.sum(0) + constant + b_U, expected[:, 0])
    full = cache.decompose_resid(apply_ln=True)
    torch.testing.assert_close(cache.logit_attrs(full, 3, pos_slice=-1), cache.logit_attrs(parts, 3))


def test_indexing_and_copies(run):
    hm, _, _, cache = run
    assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"]
    assert cache["resid_post", -1] is cache[f"blocks.{hm.cfg.n_layers - 1}.hook_resid_post"]
    assert cache["scale"] is cache["ln_final.hook_scale"] and cache["embed"] is cache["hook_embed"]
    assert cache["scale", 1, "ln2"] is cache["blocks.1.ln2.hook_scale"]
    assert ("q", 1) in cache and "blocks.0.hook_resid_pre" in cache.keys()
    assert get_act_name("attn", 3) == "blocks.3.attn.hook_pattern"
    with pytest.raises(KeyError, match="names_filter"):
        ActivationCache({}, hm)["resid_pre", 0]
    one = ActivationCache({k: v[:1] for k, v in cache.items()}, hm).remove_batch_dim().to("cpu")
    assert one["resid_pre", 0].shape == cache["resid_pre", 0].shape[1:]
    torch.testing.assert_close(one.accumulated_resid(apply_ln=True)[-1], cache.accumulated_resid(apply_ln=True)[-1][0])
    with pytest.raises(ValueError, match="batch of 1"):
        cache.remove_batch_dim()


def test_remove_batch_dim_while_caching(run):
    hm, tokens, _, cache = run
    _, single = hm.run_with_cache(tokens[:1], ["blocks.0.hook_resid_post"], remove_batch_dim=True, device="cpu")
    torch.testing.assert_close(single["resid_post", 0], cache["resid_post", 0][0])
