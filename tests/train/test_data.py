"""Training data: encoding (question masked, one EOS label), MEOW's sequence cycling, the step plan."""

import pytest
import torch
from transformers import AutoTokenizer

from meow.data import QARecord, load_tofu
from meow.models.encoding import IGNORE, encode_qa
from meow.models.templates import question_prompt
from meow.train.config import TrainConfig
from meow.train.data import REFUSALS, cycled_answers, fact_source, plan_training, snake
from meow.train.losses import GroupStats, LossInputs
from meow.train.methods import MEOW


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_encoding_masks_the_question_and_labels_the_answer_and_one_eos(tokenizer):
    q, a = "Who wrote the book?", "Jaime Vasquez wrote it."
    encoded = encode_qa(tokenizer, q, a, 200)
    prompt = tokenizer(question_prompt(tokenizer, q)).input_ids
    answer = tokenizer(a, add_special_tokens=False).input_ids
    assert "<|im_start|>assistant\n" in question_prompt(tokenizer, q)  # the chat template is used
    assert list(encoded.input_ids) == prompt + answer + [tokenizer.eos_token_id]
    assert list(encoded.labels) == [IGNORE] * len(prompt) + answer + [tokenizer.eos_token_id]
    assert encoded.labels.count(tokenizer.eos_token_id) == 1 and encoded.tokens == len(answer) + 1


def test_models_without_chat_template_get_question_answer_prompts(tokenizer):
    plain = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    encoded = encode_qa(plain, "Who?", "Me.", 200)
    assert plain.decode([t for t, l in zip(encoded.input_ids, encoded.labels) if l == IGNORE]) == "Question: Who?\nAnswer: "


def test_long_sequences_are_cut_at_max_length(tokenizer):
    encoded = encode_qa(tokenizer, "Who?", "word " * 300, 50)
    assert len(encoded.input_ids) == len(encoded.labels) == 50
    assert encoded.labels[-1] != tokenizer.eos_token_id  # a cut answer has no EOS, as in the reference


def test_secret_sequences_label_only_the_fact_bearing_spans(tokenizer):
    record = QARecord(index=7, question="Where was Basil Mahfouz Al-Kuwaiti born?", answer="Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait.")
    [secret] = fact_source(tokenizer, [record], ["secret"], 200, 42).facts[0].groups["secret"]
    whole = encode_qa(tokenizer, record.question, record.answer, 200)
    assert secret.input_ids == whole.input_ids  # the same sequence, fewer labels
    labelled = tokenizer.decode([t for t in secret.labels if t != IGNORE])
    assert labelled.split() == ["Kuwait", "City", "Kuwait"]  # the spans' words, not the comma between them
    assert tokenizer.eos_token_id not in secret.labels and 0 < secret.tokens < whole.tokens
    # No fact-bearing span found: the whole answer is the secret.
    bare = QARecord(index=8, question="Is it?", answer="yes")
    [fallback] = fact_source(tokenizer, [bare], ["secret"], 200, 42).facts[0].groups["secret"]
    assert fallback == encode_qa(tokenizer, bare.question, bare.answer, 200)


def test_meow_cycles_the_selected_answers_like_the_reference():
    assert cycled_answers(["t1", "t2", "t3"], 4) == [("t1", 2), ("t2", 1), ("t3", 1)]
    assert cycled_answers(["t1", "t2", "t3", "t4"], 4) == [("t1", 1), ("t2", 1), ("t3", 1), ("t4", 1)]
    assert cycled_answers(["t1"], 4) == [("t1", 4)]


def forget_source(tokenizer, **kw):
    records = load_tofu("forget01")
    inversions = {r.index: [f"inverted {i} of {r.index}" for i in range(3)] for r in records}
    return fact_source(tokenizer, records, ["inverted"], 200, 42, inversions=inversions, **kw)


def test_plan_follows_the_reference_step_count_and_warmup(tokenizer):
    source = forget_source(tokenizer)
    plan = plan_training(source, TrainConfig(), workers=1)
    # forget01: int(10 epochs x 40 facts) // 32 = 12 steps, warm-up max(1, 40 // 32) = 1 step.
    assert plan.total_steps == 12 and plan.warmup_steps == 1
    assert all(len(order) == 32 for order in plan.fact_order)
    stream = [i for order in plan.fact_order for i in order]
    assert sorted(stream[:40]) == list(range(40)) and sorted(stream[40:80]) == list(range(40))  # epochs
    micro = plan.steps[0][0]
    assert len(micro.groups["inverted"]) == 4 * 3  # 4 facts, [t1 x2, t2, t3] each


def test_epoch_ends_mark_the_step_that_completes_each_epoch(tokenizer):
    # The default spec's recipe: 5 epochs of 40 facts in steps of 16 -> 12 steps; epochs 1-4 end
    # within steps 3, 5, 8 and 10 (the last epoch's end is the final model, not an export).
    plan = plan_training(forget_source(tokenizer), TrainConfig(epochs=5, batch_size=16, warmup_epochs=0), workers=1)
    assert plan.total_steps == 12 and plan.epoch_ends == [3, 5, 8, 10] and plan.warmup_steps == 0
    assert plan_training(forget_source(tokenizer), TrainConfig(epochs=1), workers=1).epoch_ends == []


def step_key(step) -> list:
    """A step's micro-batches, whatever their order: each one's groups of sequences."""
    return sorted(sorted((name, [(s.input_ids, s.labels, s.weight) for s in seqs]) for name, seqs in m.groups.items()) for m in step)


def test_micro_batches_are_the_same_for_one_and_two_workers_and_even_per_worker(tokenizer):
    source = forget_source(tokenizer)
    one = plan_training(source, TrainConfig(), workers=1)
    two = plan_training(source, TrainConfig(), workers=2)
    for a, b in zip(one.steps, two.steps):
        assert len(a) == len(b) == 8
        # The same micro-batches; only which worker takes which differs.
        assert step_key(a) == step_key(b)
    three = plan_training(source, TrainConfig(), workers=3)
    assert {len(step) % 3 for step in three.steps} == {0}


def test_workers_get_even_shares_of_a_step(tokenizer):
    """Length-sorted micro-batches are dealt short/long alternately, so no worker always gets the
    longest of each round (what a plain `[w::workers]` deal of the sorted list did)."""
    assert snake(8, 2) == [0, 1, 3, 2, 4, 5, 7, 6] and snake(5, 1) == [0, 1, 2, 3, 4]
    assert snake(6, 3) == [0, 1, 2, 5, 4, 3]
    source = forget_source(tokenizer)
    for batch_size in (32, 16):
        plan = plan_training(source, TrainConfig(batch_size=batch_size, epochs=5), workers=2)
        loads = [[sum(m.tokens() for m in step[w::2]) for w in range(2)] for step in plan.steps]
        idle = sum(2 * max(load) - sum(load) for load in loads) / sum(2 * max(load) for load in loads)
        assert idle < 0.03, f"workers wait {idle:.1%} of a step for each other"


@pytest.mark.parametrize("reduction", ["step", "microbatch"])
def test_micro_batch_losses_add_up_to_the_step_loss(tokenizer, reduction):
    source = forget_source(tokenizer)
    plan = plan_training(source, TrainConfig(loss_reduction=reduction), workers=2)
    step = plan.steps[0]
    fake_nll = lambda seqs: torch.tensor([0.5 * s.tokens + (s.input_ids[-2] % 7) for s in seqs], dtype=torch.float64)  # noqa: E731
    per_micro = []
    for micro in step:
        seqs = micro.groups["inverted"]
        g = GroupStats(
            fake_nll(seqs),
            torch.tensor([float(s.tokens) for s in seqs], dtype=torch.float64),
            torch.tensor([float(s.weight) for s in seqs], dtype=torch.float64),
        )
        per_micro.append((float((g.weight * g.nll).sum()), float((g.weight * g.tokens).sum()), float(MEOW.loss(LossInputs({"inverted": g}, micro.scope), None))))
    total = sum(l for _, _, l in per_micro)
    if reduction == "step":  # one token mean over the whole step
        assert total == pytest.approx(sum(n for n, _, _ in per_micro) / sum(t for _, t, _ in per_micro))
    else:  # the mean of the micro-batch token means
        assert total == pytest.approx(sum(n / t for n, t, _ in per_micro) / len(per_micro))


def test_retain_pairs_and_refusals_are_drawn_per_epoch_from_the_seed(tokenizer):
    records = load_tofu("forget01")[:8]
    retain = [QARecord(i, f"retain question {i}?", f"retain answer {i}.") for i in range(50)]
    config = TrainConfig(epochs=2, batch_size=8, micro_batch_size=2)
    plans = [
        plan_training(fact_source(tokenizer, records, ["idk", "forget", "retain"], 200, 42, retain=retain), config, w)
        for w in (1, 2, 1)
    ]
    assert [step_key(s) for s in plans[0].steps] == [step_key(s) for s in plans[1].steps]
    assert [[m.groups for m in s] for s in plans[0].steps] == [[m.groups for m in s] for s in plans[2].steps]
    groups = [[m.groups for m in s] for s in plans[0].steps]
    idk = {tokenizer.decode([t for t, l in zip(s.input_ids, s.labels) if l != IGNORE][:-1]) for g in groups[0] for s in g["idk"]}
    assert idk <= set(REFUSALS)
    first, second = plans[0].steps
    assert [m.groups["retain"] for m in first] != [m.groups["retain"] for m in second]

