"""Every registered exercise check accepts its solution, rejects the stub, and names every wrong answer.

Beyond that, generic tests prove the isolation rules hold for every check: a learner's function
that edits a tensor input in place, changes a model's weights or leaves a hook behind is caught
and told so, and the shared models are restored for the next check.
"""

import re

import pytest
import torch

from digsite.checks import REGISTRY, CheckFailed, assert_close, exercise_check

CHECKS = sorted(REGISTRY)
WRONG = [(name, label) for name in CHECKS for label in REGISTRY[name].wrong_answers]
WRONG_IDS = [f"{name}-{i}" for name in CHECKS for i in range(len(REGISTRY[name].wrong_answers))]


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise: write this function.")


def test_there_are_checks():
    assert len(CHECKS) >= 1


@pytest.mark.parametrize("name", CHECKS)
def test_check_accepts_reference(name, capsys):
    REGISTRY[name](REGISTRY[name].reference)
    assert "passed" in capsys.readouterr().out
    assert REGISTRY[name].cases >= 2, f"{name} runs the learner's function on only {REGISTRY[name].cases} case(s)"


@pytest.mark.parametrize("name", CHECKS)
def test_check_rejects_stub(name):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        REGISTRY[name](_stub)


@pytest.mark.parametrize("name,label", WRONG, ids=WRONG_IDS)
def test_check_names_wrong_answer(name, label):
    """A registered wrong answer, submitted as a learner's, fails and its verdict names the misconception."""
    with pytest.raises(CheckFailed, match=re.escape(label)):
        REGISTRY[name](REGISTRY[name].wrong_answers[label])


def test_every_wrong_answer_is_worded_for_a_learner():
    """Each wrong answer's description is a sentence shown to a learner, not a label."""
    bad = [label for _, label in WRONG if len(label) < 30 or not label.rstrip().endswith(".")]
    assert not bad, f"not learner-facing sentences: {bad}"


def test_registering_without_wrong_answers_is_refused():
    with pytest.raises(ValueError, match="wrong answer"):
        exercise_check(reference=lambda x: x, wrong_answers={})


def test_verdict_names_shape_and_first_difference():
    with pytest.raises(CheckFailed, match=r"Expected \(2, 3\), got \(3, 2\)"):
        assert_close(torch.zeros(3, 2), torch.zeros(2, 3))
    got = torch.tensor([1.0, 2.0, 5.0])
    with pytest.raises(CheckFailed, match=r"index \[2\]: expected 3, got 5.*Largest difference: 2"):
        assert_close(got, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(CheckFailed, match="wrong dtype"):
        assert_close(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]))


def test_a_crash_in_learner_code_becomes_a_verdict():
    def broken(x):
        return x @ torch.zeros(99, 1)

    with pytest.raises(CheckFailed, match="raised RuntimeError"):
        REGISTRY["check_softmax"](broken)


def test_verdict_renders_without_traceback_in_jupyter():
    lines = CheckFailed("expected 1, got 2")._render_traceback_()
    assert lines == ["\u274c expected 1, got 2"]


def _first(args: tuple, kind: type):
    """The first argument of type `kind` (a HookedModel counts as its nn.Module)."""
    for a in args:
        a = getattr(a, "model", a) if kind is torch.nn.Module else a
        if isinstance(a, kind):
            return a
    return None


@pytest.mark.parametrize("name", CHECKS)
def test_an_input_changed_in_place_is_named(name):
    """A right answer that also edits a tensor argument in place fails, naming that argument."""
    check, changed = REGISTRY[name], []

    def sneaky(*args, **kwargs):
        out = check.reference(*args, **kwargs)
        tensor = _first(args, torch.Tensor)
        if tensor is not None and tensor.numel() and not changed:
            with torch.no_grad():
                tensor.copy_(torch.zeros_like(tensor) if bool((tensor != 0).any()) else torch.ones_like(tensor))
            changed.append(True)
        return out

    try:
        check(sneaky)
    except CheckFailed as err:
        assert changed and "in place" in str(err), str(err)
    else:
        assert not changed, f"{name} did not notice an input changed in place"


MODEL_CHECKS = [
    "check_cache_residual_stream",
    "check_logits_without_mlp",
    "check_loss_with_head_ablated",
    "check_loss_with_path_ablated",
    "check_logit_lens",
    "check_train_translators",
    "check_head_path_attribution",
    "check_patch_resid_once",
    "check_circuit_score",
    "check_batched_head_sweep",
    "check_path_patch_one",
    "check_head_direct_effects",
    "check_ce_loss_recovered",
    "check_neuron_acts",
    "check_neuron_logit_spectrum",
    "check_residuals_at",
    "check_direction_effects",
    "check_contrastive_vector",
    "check_head_effects",
    "check_token_attribution",
    "check_attention_to",
]


@pytest.mark.parametrize("name", MODEL_CHECKS)
def test_a_changed_model_is_named_and_restored(name, capsys):
    check = REGISTRY[name]

    def sneaky(*args, **kwargs):
        out = check.reference(*args, **kwargs)
        with torch.no_grad():
            next(_first(args, torch.nn.Module).parameters()).add_(1.0)
        return out

    with pytest.raises(CheckFailed, match="changed the model"):
        check(sneaky)
    check(check.reference)  # the model was restored: the reference passes again
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name", MODEL_CHECKS)
def test_a_hook_left_behind_is_named_and_removed(name, capsys):
    check, models = REGISTRY[name], []

    def sneaky(*args, **kwargs):
        out = check.reference(*args, **kwargs)
        models.append(_first(args, torch.nn.Module))
        models[-1].register_forward_hook(lambda module, inputs, output: None)
        return out

    with pytest.raises(CheckFailed, match=r"left 1 hook\(s\)"):
        check(sneaky)
    assert not any(h.__module__ == __name__ for m in models[0].modules() for h in m._forward_hooks.values())
    check(check.reference)
    assert "passed" in capsys.readouterr().out
