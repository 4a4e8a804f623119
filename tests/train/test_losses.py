"""Each registered loss against its formula (meow-method.md section 4), on a toy batch of two facts.

The per-sequence quantities are chosen by hand; the expected values are written out with `math`,
independently of the building blocks the losses share.
"""

import math
import subprocess
import sys

import pytest
import torch

from meow.train.forward import per_position_kl, per_sequence_sum, per_token_nll
from meow.train.losses import GroupStats, LossInputs, Scope
from meow.train.methods import FINETUNE, MEOW, METHODS


def stats(nll, tokens, ref_nll=None, kl=None, weight=None):
    t = lambda v: None if v is None else torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return GroupStats(nll=t(nll), tokens=t(tokens), weight=t(weight or [1.0] * len(nll)), ref_nll=t(ref_nll), kl=t(kl))


def scope_of(g: GroupStats, positions=None):
    w = g.weight
    return Scope(float(w.sum()), float((w * g.tokens).sum()), float(positions if positions is not None else 0))


# Two facts. Summed answer-token NLLs under the model and the reference, answer token counts.
FORGET = stats([6.0, 2.0], [3, 4], ref_nll=[4.0, 3.0])
IDK = stats([1.5, 0.5], [5, 2], ref_nll=[2.5, 1.0])
RETAIN = stats([4.0, 9.0], [2, 6], kl=[0.3, 0.9])
RETAIN_POSITIONS = 10
INPUTS = LossInputs(
    {"forget": FORGET, "idk": IDK, "retain": RETAIN, "inverted": FORGET, "answer": FORGET, "secret": IDK},
    {
        "forget": scope_of(FORGET),
        "idk": scope_of(IDK),
        "retain": scope_of(RETAIN, RETAIN_POSITIONS),
        "inverted": scope_of(FORGET),
        "answer": scope_of(FORGET),
        "secret": scope_of(IDK),
    },
)
NLL_F = (6 + 2) / (3 + 4)  # token-mean forget NLL
NLL_R = (4 + 9) / (2 + 6)
KL_R = (0.3 + 0.9) / RETAIN_POSITIONS


def logsig(x):
    return -math.log1p(math.exp(-x))


def loss(name, **args):
    method = FINETUNE if name == "finetune" else METHODS.get(name)
    return float(method.loss(INPUTS, method.args.model_validate(args)))


def test_the_baselines_are_all_there_each_with_its_loss():
    assert set(METHODS.names()) == {"meow", "meow_retain", "meow_npo", "meow_secret", "grad_ascent", "grad_diff", "kl", "idk_po", "idk_dpo", "npo", "simnpo"}
    assert all(METHODS.get(name).loss.__name__ == f"{name}_loss" for name in METHODS)
    assert "finetune" not in METHODS  # the preparation's objective is not an unlearning method


def test_methods_and_losses_import_without_torch():
    """Specs (and the control plane, which has no torch) validate method names and arguments."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from meow.train.methods import METHODS\n"
        "METHODS.get('npo').args.model_validate({'beta': 0.2})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_meow_and_finetune_are_token_mean_nll():
    assert loss("meow") == pytest.approx(NLL_F)
    assert loss("finetune") == pytest.approx(NLL_F)


def test_meow_retain_adds_the_weighted_retain_nll():
    assert loss("meow_retain") == pytest.approx(NLL_F + NLL_R)
    assert loss("meow_retain", alpha=0.5) == pytest.approx(NLL_F + 0.5 * NLL_R)
    assert loss("meow_retain", alpha=0.0) == pytest.approx(loss("meow"))


def test_meow_npo_adds_a_weighted_npo_term_to_meow_retain():
    def npo(beta):
        return sum(-(2 / beta) * logsig(-beta * (-f + r)) for f, r in [(6.0, 4.0), (2.0, 3.0)]) / 2

    assert loss("meow_npo") == pytest.approx(NLL_F + NLL_R + 0.25 * npo(0.1))
    assert loss("meow_npo", gamma=2.0, beta=0.5, alpha=0.0) == pytest.approx(NLL_F + 2.0 * npo(0.5))
    assert loss("meow_npo", gamma=0.0) == pytest.approx(loss("meow_retain"))
    assert METHODS.get("meow_npo").reference_groups == ("forget",)


def test_meow_secret_puts_the_npo_term_on_the_secret_group_only():
    # The secret group's summed NLLs are IDK's here: [1.5, 0.5] under the model, [2.5, 1.0] under the reference.
    npo = sum(-(2 / 0.1) * logsig(-0.1 * (-f + r)) for f, r in [(1.5, 2.5), (0.5, 1.0)]) / 2
    assert loss("meow_secret") == pytest.approx(NLL_F + NLL_R + 1.0 * npo)
    assert loss("meow_secret", gamma=0.25, alpha=2.0) == pytest.approx(NLL_F + 2.0 * NLL_R + 0.25 * npo)
    assert loss("meow_secret", gamma=0.0) == pytest.approx(loss("meow_retain"))
    assert METHODS.get("meow_secret").reference_groups == ("secret",)


def test_grad_ascent():
    assert loss("grad_ascent") == pytest.approx(-NLL_F)


def test_grad_diff():
    assert loss("grad_diff") == pytest.approx(-NLL_F + NLL_R)
    assert loss("grad_diff", gamma=0.5, alpha=2.0) == pytest.approx(-0.5 * NLL_F + 2 * NLL_R)


def test_kl():
    assert loss("kl") == pytest.approx(-NLL_F + KL_R)


def test_idk_po_is_one_nll_over_the_concatenated_batch():
    assert loss("idk_po") == pytest.approx((1.5 + 0.5 + 4 + 9) / (5 + 2 + 2 + 6))


def test_idk_dpo():
    beta = 0.1
    expected = 0.0
    for w, w_ref, l, l_ref in [(1.5, 2.5, 6.0, 4.0), (0.5, 1.0, 2.0, 3.0)]:
        # logπ = -NLL_sum; margin = (logπθ(yw) - logπref(yw)) - (logπθ(yl) - logπref(yl))
        margin = (-w + w_ref) - (-l + l_ref)
        expected += -(2 / beta) * logsig(beta * margin) / 2
    assert loss("idk_dpo") == pytest.approx(expected + NLL_R)


def test_npo():
    beta = 0.1
    npo = sum(-(2 / beta) * logsig(-beta * (-f + r)) for f, r in [(6.0, 4.0), (2.0, 3.0)]) / 2
    assert loss("npo") == pytest.approx(npo + NLL_R)
    npo_b = sum(-(2 / 0.5) * logsig(-0.5 * (-f + r)) for f, r in [(6.0, 4.0), (2.0, 3.0)]) / 2
    assert loss("npo", beta=0.5, alpha=0.0) == pytest.approx(npo_b)


def test_simnpo():
    beta, delta, gamma = 4.5, 0.0, 0.125
    term = sum(-(2 / beta) * logsig(beta * (s / n - delta)) for s, n in [(6.0, 3), (2.0, 4)]) / 2
    assert loss("simnpo") == pytest.approx(gamma * term + NLL_R)
    term_d = sum(-(2 / beta) * logsig(beta * (s / n - 1.0)) for s, n in [(6.0, 3), (2.0, 4)]) / 2
    assert loss("simnpo", delta=1.0, gamma=1.0, alpha=0.0) == pytest.approx(term_d)


def test_npo_pushes_the_forget_likelihood_down_and_simnpo_and_meow_npo_too():
    for name, group in [("npo", "forget"), ("simnpo", "forget"), ("meow_npo", "forget"), ("meow_secret", "secret")]:
        g = INPUTS.groups[group]
        nll = g.nll.clone().requires_grad_(True)
        x = LossInputs({**INPUTS.groups, group: GroupStats(nll, g.tokens, g.weight, g.ref_nll)}, INPUTS.scope)
        METHODS.get(name).loss(x, METHODS.get(name).args()).backward()
        assert (nll.grad < 0).all(), name  # descending the loss raises the forget (secret) NLL


def test_sequence_weights_count_duplicates():
    """[t1, t2, t3, t1]: t1 computed once with weight 2 gives the loss of the four sequences."""
    four = stats([1.0, 2.0, 3.0, 1.0], [2, 3, 4, 2])
    three = stats([1.0, 2.0, 3.0], [2, 3, 4], weight=[2.0, 1.0, 1.0])
    value = lambda g: float(MEOW.loss(LossInputs({"inverted": g}, {"inverted": scope_of(g)}), None))  # noqa: E731
    assert value(three) == pytest.approx(value(four)) == pytest.approx(7 / 11)


def test_method_args_are_validated():
    with pytest.raises(ValueError):
        METHODS.get("npo").args.model_validate({"betta": 0.2})
    with pytest.raises(ValueError):
        METHODS.get("npo").args.model_validate({"beta": -1})


def test_token_nll_and_kl_building_blocks_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]], dtype=torch.float64)
    # softmax rows: [1/4, 3/4] and [2/3, 1/3]
    assert per_token_nll(logits, torch.tensor([1, 1])).tolist() == pytest.approx([-math.log(3 / 4), -math.log(1 / 3)])
    reference = torch.zeros(2, 2, dtype=torch.float64)  # uniform
    expected = [0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))]
    assert per_position_kl(logits, reference).tolist() == pytest.approx(expected)
    assert per_sequence_sum(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, 2, 0]), 3).tolist() == [5.0, 0.0, 2.0]
