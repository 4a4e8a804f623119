"""The evaluator on a tiny model with real vLLM actors: scores checked against a hand-written forward pass."""

import pytest

from meow.evaluate.config import EvaluateConfig
from meow.evaluate.evaluator import evaluate_model, model_metrics, source_fingerprint
from meow.evaluate.tofu import forget_split, options_split, retain_split, scored_pair
from meow.pipeline.rundir import read_per_example, write_per_example

CONFIG = EvaluateConfig(max_length=96, actors=2, batch_size=4)


@pytest.fixture(scope="module")
def evaluated(tiny_model_dir, ray_local):
    splits = [
        forget_split("forget01", 3),
        retain_split(2),
        options_split("real_authors", 2),
        options_split("world_facts", 2),
    ]
    return evaluate_model(str(tiny_model_dir), splits, CONFIG, label="tiny"), splits


def _forward_logprob(model, prompt, answer):
    """Summed log-prob of `answer` after `prompt`, straight from a transformers forward pass."""
    import torch

    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    return sum(logprobs[len(prompt) + i - 1, token].item() for i, token in enumerate(answer))


def test_scores_match_a_forward_pass_of_the_training_format(evaluated, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    per_example, splits = evaluated
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    for split in splits:
        records = per_example[split.name]
        assert [r["index"] for r in records] == [e.index for e in split.examples]
        example, record = split.examples[0], records[0]
        prompt, answer = scored_pair(tokenizer, example.question, example.answer, CONFIG.max_length)
        assert record["answer_tokens"] == len(answer)
        assert record["answer_logprob"] == pytest.approx(_forward_logprob(model, prompt, answer), abs=1e-3)
        _, last = scored_pair(tokenizer, example.question, example.perturbed[-1], CONFIG.max_length)
        assert record["perturbed_logprob"][-1] == pytest.approx(_forward_logprob(model, prompt, last), abs=1e-3)
        assert len(record["perturbed_logprob"]) == len(example.perturbed)
        assert record["prompt_tokens"] == len(prompt)
        # Greedy generation fills at most the reference's total length of prompt + output.
        assert len(prompt) + record["generated_tokens"] <= CONFIG.max_length
        if record["finish_reason"] == "length":
            assert len(prompt) + record["generated_tokens"] == CONFIG.max_length
    # Real authors' truth-ratio base is the answer itself: the same score.
    for record in per_example["real_authors"]:
        assert record["base_logprob"] == record["answer_logprob"]


def test_metrics_recompute_from_the_saved_files_without_the_model(evaluated, tmp_path):
    per_example, _ = evaluated
    write_per_example(tmp_path, per_example)
    reloaded = read_per_example(tmp_path)
    assert reloaded == per_example
    oracle = [r["truth_ratio"] for r in reloaded["forget"]]
    assert model_metrics(reloaded, oracle) == model_metrics(per_example, oracle)
    assert model_metrics(reloaded, oracle)["forget_quality"] == 1.0


def test_the_evaluation_cache_key_ignores_comments_but_not_code(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("def f(x):\n    return x + 1\n")
    before = source_fingerprint(source)
    source.write_text("# why f adds one\ndef f(x):  # inline note\n\n    return x + 1\n")
    assert source_fingerprint(source) == before
    source.write_text("def f(x):\n    return x + 2\n")
    assert source_fingerprint(source) != before


def test_the_evaluation_cache_key_ignores_placement_but_not_numerics(tiny_model_dir):
    from meow.engines import EngineConfig
    from meow.evaluate.evaluator import evaluation_key

    splits = [options_split("world_facts", 4)]
    key = evaluation_key(tiny_model_dir, splits, EvaluateConfig())
    placed = EvaluateConfig(actors=3, batch_size=8, engine=EngineConfig(memory_per_actor="5GiB"))
    assert evaluation_key(tiny_model_dir, splits, placed) == key
    assert evaluation_key(tiny_model_dir, splits, EvaluateConfig(max_length=64)) != key
    assert evaluation_key(tiny_model_dir, splits, EvaluateConfig(engine=EngineConfig(dtype="bfloat16"))) != key
    # The frontier's dtype is read by the stage, which passes it as the engine's: a model evaluated in
    # fp32 has the same key whatever the intermediate points use.
    assert evaluation_key(tiny_model_dir, splits, EvaluateConfig(frontier_dtype="bfloat16")) == key
    assert evaluation_key(tiny_model_dir, splits, EvaluateConfig(frontier_dtype="bfloat16").with_dtype("bfloat16")) != key
