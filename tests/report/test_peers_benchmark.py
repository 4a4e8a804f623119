"""benchmarks/peers.py: its open-unlearning-style peers on the tiny model, without Ray.

The train peer must train meow's objective on meow's sequences (question tokens masked, the same
step losses as meow's own step); the eval peer's batching (right-padded teacher forcing, left-padded
greedy generation) must not change what one example gets alone or through meow's HF engine.
"""

import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def peers(load_benchmark):
    with pytest.MonkeyPatch.context() as mp:
        # As when the script runs: its directory is first on sys.path (it imports train_throughput, tofu_methods).
        mp.syspath_prepend(str(BENCHMARKS))
        # The scripts set these on import; they stay this process's own.
        for name in ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "VLLM_LOGGING_LEVEL"):
            mp.setenv(name, os.environ.get(name, ""))
        yield load_benchmark("peers")


@pytest.fixture(scope="module")
def plan(peers, tiny_model_dir):
    """Two steps of 4 forget01 facts, MEOW-shaped ([t1, t2, t3, t1] per fact), for two workers."""
    from transformers import AutoTokenizer

    from meow.train.config import TrainConfig
    from meow.train.data import plan_training
    from train_throughput import forget_source

    source = forget_source(AutoTokenizer.from_pretrained(tiny_model_dir), 200)
    config = TrainConfig(
        batch_size=4, epochs=(2 * 4 + 0.5) / len(source.facts), warmup_epochs=0, learning_rate=1e-3,
        precision="fp32", checkpoint_every=0, workers=2,
    )  # fmt: skip
    return plan_training(source, config, 2), config


@pytest.fixture(scope="module")
def engine(peers, tiny_model_dir):
    engine = peers.peer_engine(str(tiny_model_dir), "float32", 1)
    yield engine
    engine.close()


def test_peer_rows_mask_the_question_and_repeat_weighted_sequences(peers, plan, tiny_model_dir):
    from transformers import AutoTokenizer

    from meow.data import load_tofu
    from meow.models.templates import question_prompt

    plan, _ = plan
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = peers.step_rows(plan)
    # 4 facts x 4 sequences per step: t1 (computed once by meow, weight 2) is two rows here.
    assert [len(r) for r in rows] == [16, 16]
    assert sum(s.weight for m in plan.steps[0] for s in m.groups["inverted"]) == 16
    prompts = {tuple(tokenizer(question_prompt(tokenizer, r.question)).input_ids) for r in load_tofu("forget01")}
    answers = {a for r in load_tofu("forget01_perturbed") for a in r.extra["perturbed_answer"]}
    batch = peers.hf_batch(rows[0][:6])
    for row in range(6):
        labels, ids = batch["labels"][row].tolist(), batch["input_ids"][row].tolist()
        n = int(batch["attention_mask"][row].sum())
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert tuple(ids[:start]) in prompts  # exactly the question prompt carries no loss
        assert labels[start:n] == ids[start:n] and labels[n - 1] == tokenizer.eos_token_id  # answer + EOS
        assert tokenizer.decode(ids[start : n - 1]) in answers
        assert labels[n:] == [-100] * (len(labels) - n)  # padding


def test_peer_trainer_trains_meows_step_objective(peers, plan, tiny_model_dir):
    import train_throughput

    plan, config = plan
    peer = peers.peer_train(Path(tiny_model_dir), plan, config, threads=1)
    meow = train_throughput.single_process(Path(tiny_model_dir), plan, config, naive=False)
    assert [h["tokens"] for h in peer] == [h["tokens"] for h in meow]
    # Same weights, same sequences: HF's token mean over the accumulated step is meow's step loss.
    assert peer[0]["loss"] == pytest.approx(meow[0]["loss"], abs=1e-5)
    # After one AdamW step each (same decay groups, clipping, schedule), still the same loss: that
    # step moves this loss by ~0.06, so a different update (or none) would show.
    assert peer[1]["loss"] == pytest.approx(meow[1]["loss"], abs=5e-4)
    assert all(h["seconds"] > 0 and h["cpu_seconds"] > 0 for h in peer)


def examples_pairs(engine, split):
    from meow.evaluate.tofu import scored_pair

    return [scored_pair(engine.tokenizer, e.question, a, 200) for e in split.examples for a in (e.answer, *e.perturbed)]


def test_teacher_forcing_in_padded_batches_matches_one_at_a_time(peers, engine):
    from meow.evaluate.tofu import forget_split

    pairs = examples_pairs(engine, forget_split("forget01", 3))
    assert len({len(p) + len(a) for p, a in pairs}) > 5  # real padding in the batch
    batched = peers.summed_logprobs(engine.model, pairs, 32, engine.pad_id)
    alone = [peers.summed_logprobs(engine.model, [pair], 1, engine.pad_id)[0] for pair in pairs]
    through_engine = [sum(s) for s in engine.score([p for p, _ in pairs], [a for _, a in pairs])]
    assert batched == pytest.approx(alone, rel=1e-6, abs=1e-3)
    assert batched == pytest.approx(through_engine, rel=1e-6, abs=1e-3)


def test_greedy_generation_in_left_padded_batches_matches_one_at_a_time(peers, engine):
    from meow.engines import SamplingConfig
    from meow.evaluate.tofu import forget_split

    prompts = [p for p, _ in examples_pairs(engine, forget_split("forget01", 4))[::6]]
    assert len({len(p) for p in prompts}) > 1
    batched = peers.greedy_generations(engine, prompts, 32, 8)
    alone = [peers.greedy_generations(engine, [p], 1, 8)[0] for p in prompts]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    reference = engine.generate(prompts, SamplingConfig(max_new_tokens=8))
    assert [g.text for g in batched] == [g.text for g in reference]


def test_peer_records_take_each_examples_own_scores(peers, engine):
    from meow.evaluate.config import EvaluateConfig
    from meow.evaluate.tofu import forget_split, options_split

    config = EvaluateConfig(max_new_tokens=4)
    forget = forget_split("forget01", 2)
    records = peers.peer_split(engine, forget, config, batch=3)  # batches cut across examples
    pairs = examples_pairs(engine, forget)
    scores = [sum(s) for s in engine.score([p for p, _ in pairs], [a for _, a in pairs])]
    per_example = len(forget.examples[0].perturbed) + 1
    for k, record in enumerate(records):
        mine = scores[k * per_example : (k + 1) * per_example]
        assert record["answer_logprob"] == pytest.approx(mine[0], rel=1e-6, abs=1e-3)
        assert record["perturbed_logprob"] == pytest.approx(mine[1:], rel=1e-6, abs=1e-3)
        assert record["base_logprob"] != pytest.approx(record["answer_logprob"])  # the paraphrase, scored
    facts = options_split("world_facts", 2)
    for record in peers.peer_split(engine, facts, config):
        # Options splits: the answer is the truth ratio's base.
        assert record["base_logprob"] == record["answer_logprob"] and "truth_ratio" in record
    assert peers.agreement({"forget": records}, {"forget": records})["identical_generations"] == 1.0
