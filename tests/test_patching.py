"""digsite.patching: the batched sweep equals the one-at-a-time loop; path and attribution patching; circuits."""

import itertools
from functools import lru_cache

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig

from digsite import patching as P
from digsite import wrap
from digsite.fixtures import tiny


@lru_cache(maxsize=1)
def setting():
    model = tiny(3, toy=True)  # the checks' shared toy-language model, 3 layers
    data = P.ioi_data(model, 5)
    metric, clean_ld, corrupt_ld = P.ioi_metric(model, data)
    return model, data, metric


def test_ioi_data_roles_and_lengths():
    model, data, _ = setting()
    assert data.clean.shape == data.corrupt.shape
    b = torch.arange(data.clean.shape[0])
    assert torch.equal(data.clean[b, data.pos["IO"]], data.io)
    assert torch.equal(data.clean[b, data.pos["S1"]], data.s)
    assert torch.equal(data.clean[b, data.pos["S2"]], data.s)
    assert (data.pos["IO"] < data.pos["S1"]).all()  # io_first=True
    assert not (data.abc == data.s[:, None]).any()  # ABC: the subject is gone
    differs = data.corrupt != data.clean  # name swap: only S2 changes, to the IO
    assert torch.equal(differs.nonzero()[:, 1], data.pos["S2"])
    assert torch.equal(data.corrupt[b, data.pos["S2"]], data.io)
    assert data.labels[int(data.pos["S2"][0])].startswith("S2")


def test_metric_is_one_on_clean_and_zero_on_corrupt():
    model, data, metric = setting()
    with torch.no_grad():
        assert metric(model(data.clean)).item() == pytest.approx(1.0, abs=1e-5)
        assert metric(model(data.corrupt)).item() == pytest.approx(0.0, abs=1e-5)
        assert metric(model(data.clean.repeat(3, 1))).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("max_rows", [7, 2048])
def test_batched_resid_sweep_equals_the_loop(max_rows):
    model, data, metric = setting()
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
    source = P._cache(model, data.clean, names)
    patches = [P.Patch(n, (p,)) for n in names for p in range(data.clean.shape[1])]
    loop = P.patch_loop(model, data.corrupt, source, patches, metric)
    fast = P.patch_sweep(model, data.corrupt, source, patches, metric, max_rows=max_rows)
    torch.testing.assert_close(fast, loop, atol=1e-5, rtol=1e-5)
    sweep = P.resid_sweep(model, data.corrupt, data.clean, metric)
    torch.testing.assert_close(sweep.flatten(), loop, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["resid_pre", "z", "k", "pattern"])
def test_every_combination_of_savings_gives_the_same_answer(kind):
    model, data, metric = setting()
    sweep = P.resid_sweep if kind == "resid_pre" else lambda *args, **kw: P.head_sweep(*args, kind=kind, **kw)
    full = sweep(model, data.corrupt, data.clean, metric, reuse_prefix=False, skip_noops=False, reuse_positions=False)
    for flags in itertools.product([False, True], repeat=3):
        kwargs = dict(zip(["reuse_prefix", "skip_noops", "reuse_positions"], flags))
        torch.testing.assert_close(
            sweep(model, data.corrupt, data.clean, metric, max_rows=10, **kwargs), full, atol=1e-5, rtol=1e-5
        )


def test_position_reuse_runs_only_the_positions_from_the_first_change(monkeypatch):
    model, data, metric = setting()
    starts = []
    run_from = P._run_from
    monkeypatch.setattr(
        P, "_run_from", lambda model, tokens, p0, *rest: starts.append(p0) or run_from(model, tokens, p0, *rest)
    )
    P.resid_sweep(model, data.corrupt, data.clean, metric)
    s2 = int(data.pos["S2"][0])  # the only token that differs
    assert (data.pos["S2"] == s2).all() and starts and min(starts) == s2


@pytest.mark.parametrize(
    "config",
    [
        LlamaConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            vocab_size=40,
            max_position_embeddings=32,
        ),
        GPTNeoXConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=48,
            vocab_size=40,
            max_position_embeddings=32,
            rotary_pct=0.25,
        ),
    ],
    ids=["llama_gqa", "neox"],
)
def test_sweeps_equal_the_loop_on_rotary_models(config):
    """Rotary positions and grouped key-value heads survive the key-value prefix."""
    torch.manual_seed(0)
    model = wrap(AutoModelForCausalLM.from_config(config).eval())
    base = torch.randint(0, 40, (3, 9))
    source_tokens = base.clone()
    source_tokens[:, 4] = (base[:, 4] + 1) % 40
    metric = lambda logits: logits[:, -1, 0].mean()
    for kind in ("resid_pre", "k", "v", "pattern"):
        if kind == "resid_pre":
            names = [f"blocks.{l}.hook_resid_pre" for l in range(2)]
            patches = [P.Patch(n, (p,)) for n in names for p in range(9)]
        else:
            heads = model.cfg.n_kv_heads if kind in "kv" else model.cfg.n_heads
            names = [f"blocks.{l}.attn.hook_{kind}" for l in range(2)]
            patches = [P._head_patch(l, h, kind) for l in range(2) for h in range(heads)]
        source = P._cache(model, source_tokens, names)
        loop = P.patch_loop(model, base, source, patches, metric)
        torch.testing.assert_close(
            P.patch_sweep(model, base, source, patches, metric, max_rows=6), loop, atol=1e-5, rtol=1e-5
        )


def test_model_is_restored_after_a_prefix_pass():
    model, data, metric = setting()
    P.resid_sweep(model, data.corrupt, data.clean, metric)
    assert len(model.model.transformer.h) == model.cfg.n_layers
    with torch.no_grad():
        assert metric(model(data.clean)).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["z", "q", "k", "v", "pattern"])
def test_head_sweep_equals_the_loop(kind):
    model, data, metric = setting()
    cfg = model.cfg
    names = [f"blocks.{l}.attn.hook_{kind}" for l in range(cfg.n_layers)]
    source = P._cache(model, data.clean, names)
    patches = [P._head_patch(l, h, kind) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    loop = P.patch_loop(model, data.corrupt, source, patches, metric).reshape(cfg.n_layers, cfg.n_heads)
    sweep = P.head_sweep(model, data.corrupt, data.clean, metric, kind=kind, max_rows=12)
    torch.testing.assert_close(sweep, loop, atol=1e-5, rtol=1e-5)


def test_patching_everything_restores_the_clean_run():
    model, data, metric = setting()
    sweep = P.resid_sweep(model, data.corrupt, data.clean, metric)
    # patching the whole residual stream at the last position of the last layer: only END matters
    last = P.resid_sweep(model, data.corrupt, data.clean, metric, site="resid_post", layers=[model.cfg.n_layers - 1])
    assert last[0, -1].item() == pytest.approx(1.0, abs=1e-4)
    assert sweep[0, 0].item() == pytest.approx(0.0, abs=1e-6)  # BOS is the same in both runs


def test_path_patching_equals_the_direct_path_by_hand():
    model, data, metric = setting()
    cfg = model.cfg
    receivers = [(2, 1)]
    paths = P.path_patch(model, data.corrupt, data.clean, metric, receivers, "q", freeze_mlps=True, max_rows=10)
    assert torch.isnan(paths[2]).all() and not torch.isnan(paths[:2]).any()
    # by hand for sender 0.3: receiver's q from the corrupt residual plus the sender's change
    sender_l, sender_h = 0, 3
    _, clean = model.run_with_cache(data.clean)
    _, corrupt = model.run_with_cache(data.corrupt)
    W_O = model.W_O_layer(sender_l)[sender_h]
    delta = (clean["blocks.0.attn.hook_z"][:, :, sender_h] - corrupt["blocks.0.attn.hook_z"][:, :, sender_h]) @ W_O
    resid = corrupt["blocks.2.hook_resid_pre"] + delta
    ln1 = model.norm_module(2, "ln1")
    q = (
        ln1(resid) @ model.W_Q[2, 1]
        + model.model.transformer.h[2].attn.c_attn.bias[: cfg.d_model].reshape(cfg.n_heads, -1)[1]
    )

    def set_q(act, hook):
        act = act.clone()
        act[:, :, 1] = q
        return act

    with torch.no_grad():
        expected = metric(model.run_with_hooks(data.corrupt, fwd_hooks=[("blocks.2.attn.hook_q", set_q)]))
    assert paths[sender_l, sender_h].item() == pytest.approx(expected.item(), abs=1e-4)


def test_path_patching_with_mlps_recomputed_differs_only_through_mlps():
    model, data, metric = setting()
    free = P.path_patch(model, data.corrupt, data.clean, metric, [(2, 1)], "k")
    direct = P.path_patch(model, data.corrupt, data.clean, metric, [(2, 1)], "k", freeze_mlps=True)
    assert free.shape == direct.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert not torch.allclose(free[:2], direct[:2])
    # a receiver whose input is patched from the base run itself changes nothing
    same = P.path_patch(model, data.corrupt, data.corrupt, metric, [(2, 1)], "q")
    torch.testing.assert_close(same[:2], torch.zeros(2, model.cfg.n_heads), atol=1e-5, rtol=0)


def test_attribution_is_exact_for_a_linear_metric_of_the_last_residual():
    model, data, _ = setting()
    name = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    store = {}

    def metric(logits):  # reads the hooked residual: linear in it, so attribution is exact
        return (store["resid"][:, -1] @ direction).mean()

    def keep(act, hook):
        store["resid"] = act

    with model.hooks(fwd_hooks=[(name, keep)]):
        attr = P.attribution_patch(model, data.corrupt, data.clean, metric, [name])[name]
        with torch.no_grad():
            model(data.clean)
            clean_value = metric(None)
            model(data.corrupt)
            corrupt_value = metric(None)
    assert attr.shape == (data.clean.shape[1],)
    assert attr.sum().item() == pytest.approx((clean_value - corrupt_value).item(), abs=1e-4)


def test_attribution_tracks_real_head_patching():
    model, data, metric = setting()
    names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
    attr = P.attribution_patch(model, data.corrupt, data.clean, metric, names)
    estimate = torch.stack([attr[n].sum(0) for n in names])
    real = P.head_sweep(model, data.corrupt, data.clean, metric)
    corr = torch.corrcoef(torch.stack([estimate.flatten(), real.flatten()]))[0, 1]
    assert corr > 0.9


def test_circuit_of_everything_is_clean_and_of_nothing_is_corrupt():
    model, data, metric = setting()
    values = P.ablation_values(model, data.clean, data.corrupt, "resample")
    nodes = P.all_nodes(model)
    assert len(nodes) == model.cfg.n_layers * (model.cfg.n_heads + 1)
    assert P.circuit_score(model, data.clean, values, nodes, metric) == pytest.approx(1.0, abs=1e-5)
    assert P.circuit_score(model, data.clean, values, [], metric) == pytest.approx(0.0, abs=1e-5)
    for kind in ("mean", "zero"):
        vals = P.ablation_values(model, data.clean, data.corrupt, kind)
        assert all(v.shape[0] == 1 for v in vals.values())
        assert P.circuit_score(model, data.clean, vals, nodes, metric) == pytest.approx(1.0, abs=1e-5)


def test_prune_circuit_keeps_what_matters():
    nodes = [P.Node(0, 0), P.Node(0, 1), P.Node(0), P.Node(1, 0)]
    weight = {P.Node(0, 1): 0.6, P.Node(1, 0): 0.35, P.Node(0): 0.04, P.Node(0, 0): 0.01}
    kept, log = P.prune_circuit(nodes, lambda keep: sum(weight[n] for n in keep), threshold=0.05)
    assert kept == [P.Node(0, 1), P.Node(1, 0)]
    assert [str(n) for n, _, _ in log] == ["1.0", "MLP0", "0.1", "0.0"]


def test_head_roles_shapes_and_ranges():
    model, data, _ = setting()
    roles = P.head_roles(model, data)
    assert set(roles) == {"END->IO", "END->S1", "END->S2", "S2->S1", "S2->S1+1"}
    for v in roles.values():
        assert v.shape == (model.cfg.n_layers, model.cfg.n_heads)
        assert (v >= 0).all() and (v <= 1).all()


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_node_ablation_sweep_equals_the_loop_and_circuit_score(kind):
    model, data, metric = setting()
    values = P.ablation_values(model, data.clean, data.corrupt, kind)
    nodes = P.all_nodes(model)
    patches = [P.Patch(n.hook, () if n.head is None else (slice(None), n.head)) for n in nodes]
    sweep = P.patch_sweep(model, data.clean, values, patches, metric, max_rows=9)
    torch.testing.assert_close(sweep, P.patch_loop(model, data.clean, values, patches, metric), atol=1e-5, rtol=1e-5)
    for node, value in zip(nodes[:6], sweep[:6]):
        without = [n for n in nodes if n != node]
        assert P.circuit_score(model, data.clean, values, without, metric) == pytest.approx(value.item(), abs=1e-5)


# --- the chapter's "build it yourself" answers against the package's own routines ----------------


@pytest.mark.parametrize("receiver_input", ["q", "k", "v"])
def test_path_patching_from_scratch_equals_path_patch_on_every_pair(receiver_input):
    from digsite.solutions.ch03 import path_patch_one

    model, data, metric = setting()
    cfg = model.cfg
    for receiver in [(l, h) for l in range(1, cfg.n_layers) for h in range(cfg.n_heads)]:
        package = P.path_patch(model, data.corrupt, data.clean, metric, [receiver], receiver_input)
        for sender in [(l, h) for l in range(receiver[0]) for h in range(cfg.n_heads)]:
            ours = path_patch_one(model, data.corrupt, data.clean, metric, sender, [receiver], receiver_input)
            assert ours == pytest.approx(float(package[sender]), abs=1e-5), (sender, receiver)


def test_path_patching_from_scratch_with_receivers_in_two_layers():
    from digsite.solutions.ch03 import path_patch_one

    model, data, metric = setting()
    receivers = [(1, 2), (2, 0), (2, 3)]
    package = P.path_patch(model, data.clean, data.corrupt, metric, receivers, "q")  # noising
    for sender in [(l, h) for l in range(2) for h in range(model.cfg.n_heads)]:
        ours = path_patch_one(model, data.clean, data.corrupt, metric, sender, receivers, "q")
        assert ours == pytest.approx(float(package[sender]), abs=1e-5), sender


def test_batched_head_sweep_equals_head_sweep_both_ways():
    from digsite.solutions.ch03 import batched_head_sweep

    model, data, metric = setting()
    for base, source in [(data.corrupt, data.clean), (data.clean, data.corrupt)]:
        torch.testing.assert_close(
            batched_head_sweep(model, base, source, metric),
            P.head_sweep(model, base, source, metric),
            atol=1e-5,
            rtol=1e-5,
        )


def test_circuit_criteria_of_the_whole_model_and_of_a_backup_pair():
    from digsite.solutions.ch03 import circuit_criteria

    model, data, metric = setting()
    values = P.ablation_values(model, data.clean, data.corrupt)
    nodes = P.all_nodes(model)
    score = lambda keep: P.circuit_score(model, data.clean, values, keep, metric)  # noqa: E731
    whole = circuit_criteria(score, nodes, nodes, [[nodes[0]], nodes[3:6]])
    assert float(whole["faithfulness"]) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(whole["incompleteness"], torch.zeros(2), atol=1e-5)
    a, b = P.Node(0, 0), P.Node(0, 1)  # a toy score where a and b back each other up
    pair = circuit_criteria(lambda keep: float(a in keep or b in keep), [a, b], [a, b], [[a], [b]])
    assert pair["minimality"].tolist() == [1.0, 1.0]  # each matters once the other is gone
    assert circuit_criteria(lambda keep: float(a in keep or b in keep), [a, b], [a, b], [])["minimality"].tolist() == [
        0,
        0,
    ]


def test_direct_effects_of_a_zeroed_head_vanish_and_match_the_cache_by_hand():
    from digsite.solutions.ch03 import head_direct_effects

    model, data, _ = setting()

    def zero(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    effects = head_direct_effects(model, data.clean, data.io, data.s, [("blocks.1.attn.hook_z", zero)])
    assert effects.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert effects[1, 1].abs() < 1e-6 and effects.abs().sum() > 0
    _, cache = model.run_with_cache(data.clean)
    final = cache["ln_final.hook_scale"][:, -1]  # by hand: centre, divide by the scale, weight, unembed
    with torch.no_grad():
        out = cache["blocks.2.attn.hook_z"][:, -1, 3] @ model.W_O[2, 3]
        out = (out - out.mean(-1, keepdim=True)) / final * model.norm_module(None).weight
        by_hand = (out * (model.W_U[:, data.io] - model.W_U[:, data.s]).T).sum(-1).mean()
    plain = head_direct_effects(model, data.clean, data.io, data.s)
    assert float(plain[2, 3]) == pytest.approx(float(by_hand), abs=1e-5)
