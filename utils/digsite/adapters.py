"""Architecture adapters: where each standard hook point lives inside a Hugging Face model.

A hooked model speaks one vocabulary (TransformerLens's: `blocks.3.hook_resid_pre`,
`blocks.3.attn.hook_pattern`, ...) whatever the architecture underneath. An `Adapter`
is the small table that says, for one architecture, which Hugging Face module holds
each piece: the position embedding, the list of blocks, and inside a block its two
norms, its attention, the attention's output projection and the MLP's layers.

Norms a family lacks are None; a family that normalises each sublayer's output (Gemma 2/3,
OLMo-2) names those norms `ln1_post` / `ln2_post`, and attn_out / mlp_out are taken after them,
so every hook name keeps one meaning across families (docs/models.md). A config of a covered
type that still cannot be hooked (an old transformers release, an unusual layout) is refused
by the adapter's `config_problem`, before any weights are read.

Adding an architecture = adding one `Adapter` to `ADAPTERS`:

1. Print `[name for name, _ in model.named_modules()]` for a small random config.
2. Fill in the module paths (block-relative ones are relative to one block); the token
   embedding and unembedding come from `get_input_embeddings` / `get_output_embeddings`.
3. Say how to read per-head W_Q, W_K, W_V from the attention module (`qkv`).
4. List the config `model_type`s it covers, add a test config to tests/test_hooks.py's
   CONFIGS, and a section to docs/models.md.

The attention module must call `ALL_ATTENTION_FUNCTIONS` (every current model in
transformers does): that is how q, k, v, scores and patterns are hooked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def _phi3_qkv(attn: nn.Module, n_heads: int, n_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """Phi-3's fused qkv_proj is [q (n_heads heads) | k (n_kv_heads) | v (n_kv_heads)] along the output dim."""
    w = in_out_weight(attn.qkv_proj)
    d_head = w.shape[1] // (n_heads + 2 * n_kv_heads)
    q, k, v = w.split([n_heads * d_head, n_kv_heads * d_head, n_kv_heads * d_head], dim=1)
    return _heads(q, n_heads), _heads(k, n_kv_heads), _heads(v, n_kv_heads)


def _transformers_at_least(version: str) -> bool:
    import transformers
    from packaging.version import Version

    return Version(transformers.__version__) >= Version(version)


def _needs_transformers(version: str, family: str) -> str | None:
    if _transformers_at_least(version):
        return None
    import transformers

    return (
        f"{family}'s attention goes through transformers' attention registry (where digsite hooks q, k, v and "
        f"the pattern) only from transformers {version}, and this is {transformers.__version__}: "
        "`pip install -U transformers`"
    )


def _gptj_problem(config) -> str | None:
    return _needs_transformers("5.24.0", "GPT-J")


def _opt_problem(config) -> str | None:
    if not getattr(config, "do_layer_norm_before", True):
        return "this OPT checkpoint normalises after each residual addition (do_layer_norm_before=False, as opt-350m)"
    if getattr(config, "word_embed_proj_dim", config.hidden_size) != config.hidden_size:
        return "this OPT checkpoint projects its embeddings (word_embed_proj_dim != hidden_size, as opt-350m)"
    return _needs_transformers("4.52.0", "OPT")


@dataclass(frozen=True)
class Adapter:
    """Where the standard pieces of one architecture live (paths as in `named_modules`).

    Every path after `blocks` is relative to one block. A norm that a family does not have is
    None (OLMo-2 has no norm before attention or MLP; GPT-J's MLP reads ln1's output).
    """

    architecture: str
    model_types: tuple[str, ...]
    family: str  # the family's name for people ("Gemma 1, 2 and 3")
    pos_embed: str | None  # learned position embedding, None for rotary models
    blocks: str  # the nn.ModuleList of decoder blocks
    ln1: str | None  # the norm attention reads
    attn: str
    o_proj: str  # attention output projection: its input is z
    ln2: str | None  # the norm the MLP reads
    mlp: str
    mlp_in: str  # its output is mlp.hook_pre (the gate for gated MLPs)
    mlp_out: str  # its input is mlp.hook_post
    ln_final: str
    normalization: Literal["LN", "RMS"]
    qkv: Callable[[nn.Module, int, int], tuple[torch.Tensor, ...]]
    mlp_in_linear: str | None = None  # gated MLPs: the up projection, mlp.hook_pre_linear
    parallel_flag: str | None = None  # config attribute saying attn and MLP read the same input
    always_parallel: bool = False  # attention and MLP always read the same input (GPT-J)
    ln1_post: str | None = None  # a norm on the attention's output before it is added (Gemma 2/3, OLMo-2)
    ln2_post: str | None = None  # the same on the MLP's output
    mlp_fused: bool = False  # mlp_in outputs [gate | up] in one tensor (Phi-3's gate_up_proj)
    mlp_flat: bool = False  # the MLP runs on (batch * pos, d) rows (OPT): hooks still see (batch, pos, d)
    q_prescaled: bool = False  # q is multiplied by d_head ** -0.5 before attention (OPT): hook_q undoes it
    embed_scale: bool = False  # embeddings are multiplied by sqrt(d_model) before block 0 (Gemma)
    config_problem: Callable[[object], str | None] | None = None  # why a config of these types cannot be hooked

    def is_parallel(self, config) -> bool:
        """True when attention and MLP both read resid_pre (so there is no resid_mid)."""
        return self.always_parallel or bool(self.parallel_flag and getattr(config, self.parallel_flag, False))


GPT2 = Adapter(
    architecture="gpt2",
    model_types=("gpt2",),
    family="GPT-2",
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
    family="GPT-NeoX (Pythia)",
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
    model_types=("llama", "qwen2", "mistral", "qwen3"),
    family="Llama, Mistral, Qwen2 and Qwen3",
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

# The families below share Llama's module names; each states only where it differs.
GEMMA = replace(LLAMA, architecture="gemma", model_types=("gemma",), family="Gemma", embed_scale=True)

GEMMA2 = replace(  # and Gemma 3: sandwich norms around attention and MLP
    LLAMA,
    architecture="gemma2",
    model_types=("gemma2", "gemma3_text"),
    family="Gemma 2 and Gemma 3 (text)",
    ln1_post="post_attention_layernorm",
    ln2="pre_feedforward_layernorm",
    ln2_post="post_feedforward_layernorm",
    embed_scale=True,
)

OLMO2 = replace(  # norms only after attention and the MLP
    LLAMA,
    architecture="olmo2",
    model_types=("olmo2",),
    family="OLMo-2",
    ln1=None,
    ln1_post="post_attention_layernorm",
    ln2=None,
    ln2_post="post_feedforward_layernorm",
)

PHI3 = replace(  # fused q/k/v and fused gate/up projections
    LLAMA,
    architecture="phi3",
    model_types=("phi3",),
    family="Phi-3",
    mlp_in="mlp.gate_up_proj",
    mlp_in_linear="mlp.gate_up_proj",
    qkv=_phi3_qkv,
    mlp_fused=True,
)

GPTJ = Adapter(
    architecture="gptj",
    model_types=("gptj",),
    family="GPT-J",
    pos_embed=None,
    blocks="transformer.h",
    ln1="ln_1",
    attn="attn",
    o_proj="attn.out_proj",
    ln2=None,  # the MLP reads ln_1's output too
    mlp="mlp",
    mlp_in="mlp.fc_in",
    mlp_out="mlp.fc_out",
    ln_final="transformer.ln_f",
    normalization="LN",
    qkv=_llama_qkv,
    always_parallel=True,
    config_problem=_gptj_problem,
)

OPT = Adapter(
    architecture="opt",
    model_types=("opt",),
    family="OPT",
    pos_embed="model.decoder.embed_positions",
    blocks="model.decoder.layers",
    ln1="self_attn_layer_norm",
    attn="self_attn",
    o_proj="self_attn.out_proj",
    ln2="final_layer_norm",
    mlp="fc2",  # no MLP module: fc1 -> activation -> fc2 inside the block
    mlp_in="fc1",
    mlp_out="fc2",
    ln_final="model.decoder.final_layer_norm",
    normalization="LN",
    qkv=_llama_qkv,
    mlp_flat=True,
    q_prescaled=True,
    config_problem=_opt_problem,
)

ADAPTERS: tuple[Adapter, ...] = (GPT2, NEOX, LLAMA, GEMMA, GEMMA2, OLMO2, PHI3, GPTJ, OPT)

#: Why some model_types no adapter covers cannot be hooked, and what to load instead.
_HINTS = {
    "gemma3": "This is the multimodal Gemma 3 (model_type 'gemma3'); digsite hooks the text-only Gemma 3 "
    "(model_type 'gemma3_text', e.g. google/gemma-3-1b-pt), or load the language model part yourself and wrap it. ",
}


def supported_model_types() -> list[str]:
    """Every config `model_type` some adapter covers."""
    return sorted(t for a in ADAPTERS for t in a.model_types)


def supported_families() -> str:
    """The families digsite can hook, for people: "GPT-2, GPT-NeoX (Pythia), ..."."""
    return ", ".join(a.family for a in ADAPTERS)


def adapter_for_config(config) -> Adapter:
    """The adapter for a Hugging Face config, checked before any weights are read.

    Raises NotImplementedError naming the supported model_types when no adapter covers the
    config's model_type, or saying why this particular config cannot be hooked.
    """
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            problem = adapter.config_problem(config) if adapter.config_problem else None
            if problem:
                raise NotImplementedError(f"This {model_type!r} model cannot be hooked: {problem}.")
            return adapter
    raise NotImplementedError(
        f"digsite has no adapter for model_type {model_type!r}. {_HINTS.get(model_type, '')}"
        f"Supported model_types: {', '.join(supported_model_types())} ({supported_families()}). "
        "Adding one is a small table in digsite/adapters.py (see its docstring)."
    )


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter for a Hugging Face causal LM; a clear error names the supported types."""
    return adapter_for_config(model.config)


@dataclass(frozen=True)
class ModelConfig:
    """The sizes and kinds a hooked model reports as `model.cfg` (TransformerLens names where it has one)."""

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
    attn_scale: float  # scores = q . k / attn_scale (sqrt(d_head), except Gemma 2/3: sqrt(query_pre_attn_scalar))
    attn_scores_soft_cap: float | None  # Gemma 2: scores -> cap * tanh(scores / cap) before the mask
    output_logits_soft_cap: float | None  # Gemma 2: logits -> cap * tanh(logits / cap) after the unembedding
    embed_scale: float  # hook_embed = W_E[token] * embed_scale (sqrt(d_model) for Gemma, else 1)
    sliding_window: int | None  # local attention's window (keys at most this many positions back, itself included)
    local_layers: tuple[int, ...]  # the layers that use the sliding window (Gemma 2/3, Mistral, ...)
    post_norms: bool  # ln1_post / ln2_post normalise each sublayer's output before it is added (Gemma 2/3, OLMo-2)


def model_config(adapter: Adapter, model: nn.Module) -> ModelConfig:
    """Read the sizes from the Hugging Face config and, where configs disagree, from the modules."""
    config = model.config
    n_heads = config.num_attention_heads
    blocks = model.get_submodule(adapter.blocks)
    block = blocks[0]
    ln_final = model.get_submodule(adapter.ln_final)
    d_head = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    attn = block.get_submodule(adapter.attn)
    scaling = getattr(attn, "scaling", None)
    # per layer where the attention module says (None on global layers), else the config's for all (Mistral)
    default_window = getattr(config, "sliding_window", None)
    windows = [getattr(b.get_submodule(adapter.attn), "sliding_window", default_window) for b in blocks]
    d_mlp = in_out_weight(block.get_submodule(adapter.mlp_in)).shape[1]
    return ModelConfig(
        architecture=adapter.architecture,
        model_type=config.model_type,
        n_layers=config.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
        d_model=config.hidden_size,
        d_head=d_head,
        d_mlp=d_mlp // 2 if adapter.mlp_fused else d_mlp,
        d_vocab=model.get_output_embeddings().weight.shape[0],
        n_ctx=config.max_position_embeddings,
        has_pos_embed=adapter.pos_embed is not None,
        positional_embedding_type="standard" if adapter.pos_embed else "rotary",
        normalization_type=adapter.normalization,
        eps=getattr(ln_final, "eps", None) or ln_final.variance_epsilon,
        parallel_attn_mlp=adapter.is_parallel(config),
        gated_mlp=adapter.mlp_in_linear is not None,
        attn_scale=float(1 / scaling if scaling and not adapter.q_prescaled else d_head**0.5),
        attn_scores_soft_cap=getattr(config, "attn_logit_softcapping", None),
        output_logits_soft_cap=getattr(config, "final_logit_softcapping", None),
        embed_scale=float(config.hidden_size**0.5 if adapter.embed_scale else 1.0),
        sliding_window=next((w for w in windows if w), None),
        local_layers=tuple(l for l, w in enumerate(windows) if w),
        post_norms=adapter.ln1_post is not None,
    )
