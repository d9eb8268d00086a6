"""Architecture adapters: where each standard hook point lives inside a Hugging Face model.

A hooked model speaks one vocabulary (TransformerLens's: `blocks.3.hook_resid_pre`,
`blocks.3.attn.hook_pattern`, ...) whatever the architecture underneath. An `Adapter`
is the small table that says, for one architecture, which Hugging Face module holds
each piece: the position embedding, the list of blocks, and inside a block its two
norms, its attention, the attention's output projection and the MLP's layers.

Adding an architecture = adding one `Adapter` to `ADAPTERS`:

1. Print `[name for name, _ in model.named_modules()]` for a small random config.
2. Fill in the module paths (block-relative ones are relative to one block); the token
   embedding and unembedding come from `get_input_embeddings` / `get_output_embeddings`.
3. Say how to read per-head W_Q, W_K, W_V from the attention module (`qkv`).
4. List the config `model_type`s it covers, and add a test config to tests/test_hooks.py.

The attention module must call `ALL_ATTENTION_FUNCTIONS` (every current model in
transformers does): that is how q, k, v, scores and patterns are hooked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn


def in_out_weight(module: nn.Module) -> torch.Tensor:
    """A projection's weight as (d_in, d_out), for both nn.Linear and GPT-2's Conv1D."""
    return module.weight.T if isinstance(module, nn.Linear) else module.weight


def _heads(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(d_model, n_heads * d_head) -> (n_heads, d_model, d_head)."""
    return w.reshape(w.shape[0], n_heads, -1).transpose(0, 1)


def _gpt2_qkv(attn: nn.Module, n_heads: int, n_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """GPT-2's fused c_attn is [q | k | v] along the output dim."""
    q, k, v = in_out_weight(attn.c_attn).chunk(3, dim=1)
    return _heads(q, n_heads), _heads(k, n_kv_heads), _heads(v, n_kv_heads)


def _neox_qkv(attn: nn.Module, n_heads: int, n_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """NeoX's fused query_key_value is laid out per head: [head][q | k | v][d_head]."""
    w = in_out_weight(attn.query_key_value)
    w = w.reshape(w.shape[0], n_heads, 3, -1)
    return tuple(w[:, :, i].transpose(0, 1) for i in range(3))


def _llama_qkv(attn: nn.Module, n_heads: int, n_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """Llama-family models keep q_proj, k_proj, v_proj separate (k, v with n_kv_heads)."""
    return (
        _heads(in_out_weight(attn.q_proj), n_heads),
        _heads(in_out_weight(attn.k_proj), n_kv_heads),
        _heads(in_out_weight(attn.v_proj), n_kv_heads),
    )


@dataclass(frozen=True)
class Adapter:
    """Where the standard pieces of one architecture live (paths as in `named_modules`)."""

    architecture: str
    model_types: tuple[str, ...]
    pos_embed: str | None  # learned position embedding, None for rotary models
    blocks: str  # the nn.ModuleList of decoder blocks
    ln1: str  # the rest are relative to one block
    attn: str
    o_proj: str  # attention output projection: its input is z
    ln2: str
    mlp: str
    mlp_in: str  # its output is mlp.hook_pre (the gate for gated MLPs)
    mlp_out: str  # its input is mlp.hook_post
    ln_final: str
    normalization: Literal["LN", "RMS"]
    qkv: Callable[[nn.Module, int, int], tuple[torch.Tensor, ...]]
    mlp_in_linear: str | None = None  # gated MLPs: the up projection, mlp.hook_pre_linear
    parallel_flag: str | None = None  # config attribute saying attn and MLP read the same input

    def is_parallel(self, config) -> bool:
        """True when attention and MLP both read resid_pre (so there is no resid_mid)."""
        return bool(self.parallel_flag and getattr(config, self.parallel_flag, False))


GPT2 = Adapter(
    architecture="gpt2",
    model_types=("gpt2",),
    pos_embed="transformer.wpe",
    blocks="transformer.h",
    ln1="ln_1",
    attn="attn",
    o_proj="attn.c_proj",
    ln2="ln_2",
    mlp="mlp",
    mlp_in="mlp.c_fc",
    mlp_out="mlp.c_proj",
    ln_final="transformer.ln_f",
    normalization="LN",
    qkv=_gpt2_qkv,
)

NEOX = Adapter(
    architecture="gpt_neox",
    model_types=("gpt_neox",),
    pos_embed=None,
    blocks="gpt_neox.layers",
    ln1="input_layernorm",
    attn="attention",
    o_proj="attention.dense",
    ln2="post_attention_layernorm",
    mlp="mlp",
    mlp_in="mlp.dense_h_to_4h",
    mlp_out="mlp.dense_4h_to_h",
    ln_final="gpt_neox.final_layer_norm",
    normalization="LN",
    qkv=_neox_qkv,
    parallel_flag="use_parallel_residual",
)

LLAMA = Adapter(
    architecture="llama",
    model_types=("llama", "qwen2", "mistral"),
    pos_embed=None,
    blocks="model.layers",
    ln1="input_layernorm",
    attn="self_attn",
    o_proj="self_attn.o_proj",
    ln2="post_attention_layernorm",
    mlp="mlp",
    mlp_in="mlp.gate_proj",
    mlp_in_linear="mlp.up_proj",
    mlp_out="mlp.down_proj",
    ln_final="model.norm",
    normalization="RMS",
    qkv=_llama_qkv,
)

ADAPTERS: tuple[Adapter, ...] = (GPT2, NEOX, LLAMA)


def supported_model_types() -> list[str]:
    """Every config `model_type` some adapter covers."""
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter for a Hugging Face causal LM; a clear error names the supported types."""
    model_type = getattr(model.config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise NotImplementedError(
        f"digsite has no adapter for model_type {model_type!r}. "
        f"Supported: {', '.join(supported_model_types())}. "
        "Adding one is a small table in digsite/adapters.py (see its docstring)."
    )


@dataclass(frozen=True)
class ModelConfig:
    """The sizes and kinds a hooked model reports as `model.cfg` (TransformerLens names)."""

    architecture: str
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int  # < n_heads for grouped-query attention
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    has_pos_embed: bool
    positional_embedding_type: str  # "standard" (learned) or "rotary"
    normalization_type: str  # "LN" (centre, divide, weight, bias) or "RMS" (divide, weight)
    eps: float
    parallel_attn_mlp: bool  # attention and MLP both read resid_pre: no resid_mid
    gated_mlp: bool


def model_config(adapter: Adapter, model: nn.Module) -> ModelConfig:
    """Read the sizes from the Hugging Face config and, where configs disagree, from the modules."""
    config = model.config
    n_heads = config.num_attention_heads
    block = model.get_submodule(adapter.blocks)[0]
    ln1 = block.get_submodule(adapter.ln1)
    return ModelConfig(
        architecture=adapter.architecture,
        model_type=config.model_type,
        n_layers=config.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
        d_model=config.hidden_size,
        d_head=getattr(config, "head_dim", None) or config.hidden_size // n_heads,
        d_mlp=in_out_weight(block.get_submodule(adapter.mlp_in)).shape[1],
        d_vocab=model.get_output_embeddings().weight.shape[0],
        n_ctx=config.max_position_embeddings,
        has_pos_embed=adapter.pos_embed is not None,
        positional_embedding_type="standard" if adapter.pos_embed else "rotary",
        normalization_type=adapter.normalization,
        eps=getattr(ln1, "eps", None) or ln1.variance_epsilon,
        parallel_attn_mlp=adapter.is_parallel(config),
        gated_mlp=adapter.mlp_in_linear is not None,
    )
