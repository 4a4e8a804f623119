"""The per-sequence quantities losses see, against a direct computation from the full logits.

Covers the question masking (only answer tokens and the EOS count), the reference model's NLL and
KL(reference || model) over attended positions, and the equality with HF's `model(labels=...).loss`.
"""

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from meow.data import load_tofu
from meow.models.encoding import IGNORE, encode_qa
from meow.testing.tiny_model import build_tiny_llama
from meow.train.config import TrainConfig
from meow.train.data import MicroBatch
from meow.train.forward import Scorer, collate, group_stats, pack_shared_prompts
from meow.train.losses import LossInputs, Scope
from meow.train.methods import FINETUNE, KL, MEOW, NoArgs
from meow.train.trainer import TrainJob

NO_AUTOCAST = torch.autocast("cpu", enabled=False)
# Both reference quantities at once: NLL of the forget answers and KL on the retain inputs.
KL_AND_FORGET_REFERENCE = dataclasses.replace(KL, reference_groups=("forget",))


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    other = build_tiny_llama(tmp_path_factory.mktemp("reference"), seed=1)
    load = lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()  # noqa: E731
    return AutoTokenizer.from_pretrained(tiny_model_dir), load(tiny_model_dir), load(other)


def batch(tokenizer):
    rows = load_tofu("forget01")
    forget = [encode_qa(tokenizer, r.question, r.answer, 200) for r in rows[:3]]
    retain = [encode_qa(tokenizer, r.question, r.answer, 200) for r in load_tofu("retain_perturbed")[:2]]
    return MicroBatch({"forget": forget, "retain": retain}, {})


def direct(model, sequences):
    """Summed answer NLL and full next-token log-probs of each sequence, one at a time, no padding."""
    out = []
    for s in sequences:
        ids = torch.tensor([s.input_ids])
        log_p = model(input_ids=ids).logits[0].log_softmax(-1)
        labels = torch.tensor(s.labels)
        nll = -sum(log_p[t - 1, labels[t]] for t in range(1, len(labels)) if labels[t] != IGNORE)
        out.append((float(nll), log_p))
    return out


def test_answer_nll_masks_the_question_and_matches_a_direct_computation(models):
    tokenizer, model, _ = models
    micro = batch(tokenizer)
    job = TrainJob("unused", FINETUNE, NoArgs(), TrainConfig())
    with torch.no_grad():
        stats = group_stats(Scorer(model), None, micro, job, torch.device("cpu"), NO_AUTOCAST)
        for group in ("forget", "retain"):
            expected = [nll for nll, _ in direct(model, micro.groups[group])]
            assert stats[group].nll.tolist() == pytest.approx(expected, rel=1e-5)
            assert stats[group].tokens.tolist() == [s.tokens for s in micro.groups[group]]


def test_token_mean_equals_hf_labels_loss(models):
    tokenizer, model, _ = models
    micro = batch(tokenizer)
    seqs = micro.groups["forget"]
    ids, mask, labels = collate(seqs)
    with torch.no_grad():
        hf = float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
        job = TrainJob("unused", FINETUNE, NoArgs(), TrainConfig())
        only = MicroBatch({"answer": seqs}, {"answer": Scope(len(seqs), sum(s.tokens for s in seqs), 0)})
        stats = group_stats(Scorer(model), None, only, job, torch.device("cpu"), NO_AUTOCAST)
        ours = float(FINETUNE.loss(LossInputs(stats, only.scope), NoArgs()))
    assert ours == pytest.approx(hf, rel=1e-5)


def test_reference_nll_and_kl_over_attended_positions(models):
    tokenizer, model, reference = models
    micro = batch(tokenizer)
    job = TrainJob("unused", KL_AND_FORGET_REFERENCE, NoArgs(), TrainConfig())
    with torch.no_grad():
        stats = group_stats(Scorer(model), Scorer(reference), micro, job, torch.device("cpu"), NO_AUTOCAST)
        ref_direct = direct(reference, micro.groups["forget"])
        assert stats["forget"].ref_nll.tolist() == pytest.approx([nll for nll, _ in ref_direct], rel=1e-5)
        kl = []
        for (_, log_p), (_, log_ref) in zip(direct(model, micro.groups["retain"]), direct(reference, micro.groups["retain"])):
            kl.append(float((log_ref.exp() * (log_ref - log_p)).sum()))  # every position of the sequence
        assert stats["retain"].kl.tolist() == pytest.approx(kl, rel=1e-4)
        assert min(kl) > 0


def test_against_itself_the_reference_gives_zero_log_ratio_and_kl(models):
    tokenizer, model, _ = models
    micro = batch(tokenizer)
    job = TrainJob("unused", KL_AND_FORGET_REFERENCE, NoArgs(), TrainConfig())
    with torch.no_grad():
        stats = group_stats(Scorer(model), Scorer(model), micro, job, torch.device("cpu"), NO_AUTOCAST)
    assert stats["forget"].ref_nll.tolist() == pytest.approx(stats["forget"].nll.tolist(), rel=1e-6)
    assert stats["retain"].kl.abs().max() < 1e-5


def meow_batch(tokenizer):
    """MEOW's shape: three inverted answers of one fact (the first counted twice), plus another fact's."""
    first, second = load_tofu("forget01_perturbed")[:2]
    inverted = [encode_qa(tokenizer, first.question, a, 200) for a in first.extra["perturbed_answer"][:3]]
    inverted[0] = inverted[0].weighted(2)
    inverted.append(encode_qa(tokenizer, second.question, second.extra["perturbed_answer"][0], 200))
    scope = Scope(sum(s.weight for s in inverted), sum(s.weight * s.tokens for s in inverted), 0)
    return MicroBatch({"inverted": inverted}, {"inverted": scope})


def test_answers_sharing_a_prompt_are_packed_into_one_row(models):
    tokenizer, _, _ = models
    sequences = meow_batch(tokenizer).groups["inverted"]
    packed = pack_shared_prompts(sequences)
    assert packed.input_ids.shape[0] == 2  # one row per question
    prompt = next(i for i, label in enumerate(sequences[0].labels) if label != IGNORE)
    assert int((packed.input_ids[0] != 0).sum()) <= sum(len(s.input_ids) for s in sequences[:3]) - 2 * prompt
    # The second answer restarts at the prompt's end, and sees the prompt but not the first answer.
    second_start = len(sequences[0].input_ids)
    assert int(packed.position_ids[0, second_start]) == prompt
    assert bool(packed.attention_mask[0, 0, second_start, prompt - 1])
    assert not bool(packed.attention_mask[0, 0, second_start, prompt])
    assert len(packed.label_target) == sum(s.tokens for s in sequences)


def test_packed_rows_give_the_padded_rows_nll_and_gradients(models):
    tokenizer, model, _ = models
    micro = meow_batch(tokenizer)
    results = {}
    for share in (True, False):
        model.zero_grad(set_to_none=True)
        job = TrainJob("unused", MEOW, NoArgs(), TrainConfig(share_prompts=share))
        stats = group_stats(Scorer(model), None, micro, job, torch.device("cpu"), NO_AUTOCAST)
        MEOW.loss(LossInputs(stats, micro.scope), NoArgs()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[share] = stats["inverted"].nll.detach(), grads
    expected = [nll for nll, _ in direct(model, micro.groups["inverted"])]
    assert results[True][0].tolist() == pytest.approx(expected, rel=1e-5)
    assert results[False][0].tolist() == pytest.approx(expected, rel=1e-5)
    packed, padded = results[True][1], results[False][1]
    assert packed.keys() == padded.keys() and len(packed) > 0
    scale = max(float(g.abs().max()) for g in padded.values())
    assert max(float((packed[n] - padded[n]).abs().max()) for n in packed) < 1e-5 * scale
