"""benchmarks/run_floor.py on a fake finished run: its token sums and floor arithmetic, by hand."""

import json
import os
from pathlib import Path

import pytest

from meow.models.cache import MANIFEST
from meow.pipeline.rundir import RunDir
from meow.pipeline.spec import PipelineSpec

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# A Llama of 2 layers: per layer q/k/v 8 x (2 + 2 x 1) x 4 = 128, o 8 x 8 = 64, gate/up 8 x 2 x 16 =
# 256, down 16 x 8 = 128, so 576; the LM head 8 x 32 = 256. A token's forward pass: 2 x (1152 + 256).
TINY = dict(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, head_dim=4, intermediate_size=16,
            num_hidden_layers=2, vocab_size=32)  # fmt: skip
BLOCKS, HEAD = 1152, 256
FORWARD = 2 * (BLOCKS + HEAD) / 1e9  # GFLOP
GFLOPS = {"fp32": 0.001, "bf16": 0.002}  # per core
CORES = 2


@pytest.fixture(scope="module")
def floor(load_benchmark):
    with pytest.MonkeyPatch.context() as mp:
        # As when the script runs: its directory is first on sys.path (it imports cpu_gemm).
        mp.syspath_prepend(str(BENCHMARKS))
        # cpu_gemm sets these on import; they stay this process's own.
        for name in ("OMP_NUM_THREADS", "VLLM_LOGGING_LEVEL"):
            mp.setenv(name, os.environ.get(name, ""))
        yield load_benchmark("run_floor")


def example(index, answer, base, perturbed, generated, prompt):
    """One per-example row as the evaluator writes it; scored answers as (log-prob, tokens)."""
    return {
        "index": index, "question": "Q?", "answer": "A.", "generation": "G.", "finish_reason": "stop",
        "generated_tokens": generated, "prompt_tokens": prompt, "answer_logprob": answer[0], "answer_tokens": answer[1],
        "base_logprob": base[0], "base_tokens": base[1],
        "perturbed_logprob": [p[0] for p in perturbed], "perturbed_tokens": [p[1] for p in perturbed],
        "rouge_l_recall": 1.0, "truth_ratio": 0.5, "probability": 0.5,
    }  # fmt: skip


def per_example(generated):
    # forget: answer, paraphrased base and two perturbed, all scored: 10 + 12 + 9 + 11 = 42 tokens.
    # real_authors: the base is the answer, scored once: 5 + 6 = 11 tokens.
    return {
        "forget": [example(0, (-1.0, 10), (-2.0, 12), [(-3.0, 9), (-4.0, 11)], generated, 20)],
        "real_authors": [example(0, (-0.5, 5), (-0.5, 5), [(-1.5, 6)], 4, 8)],
    }


SCORED = 42 + 11
PROMPTS = 20 + 8  # each example's question prompt, once
# Models in evaluation order: generated tokens (forget's + real authors' 4), seconds, cached, precision
# (the per-epoch model's engine takes `frontier_dtype`).
EVALUATED = {
    "oracle": (5, 30.0, False, "fp32"),
    "target": (7, 1.0, True, "fp32"),
    "unlearned-epoch-1": (9, 8.0, False, "bf16"),
    "unlearned": (20, 60.0, False, "fp32"),
}
SECONDS = {"prepare": 10.0, "invert": 5.0, "memo": 20.0, "select": 0.5, "unlearn": 30.0, "evaluate": 100.0,
           "report": 2.0}  # fmt: skip


def fake_run(path: Path) -> Path:
    from transformers import LlamaConfig

    spec = PipelineSpec.model_validate({
        "name": "fake",
        "stages": list(SECONDS),
        "prepare": {"train": {"precision": "fp32"}},
        "memo": {"engine": {"dtype": "bfloat16"}},
        "unlearn": {"train": {"precision": "bf16"}},
        "evaluate": {"engine": {"dtype": "float32"}, "frontier_dtype": "bfloat16"},
    })  # fmt: skip
    run = RunDir(path)
    (run.path / "spec.yaml").write_text(spec.to_yaml())
    hardware = {"cpu": "Fake CPU", "cpus": 2, "cpu_bf16": False, "torch_cpu_capability": "AVX2", "gpus": []}
    run.log("run_started", stages=list(SECONDS), versions={}, hardware=hardware)
    # The prepared models: the target from the cache, trained before (per step tokens in its history).
    for role, steps in (("target", [100, 200]), ("oracle", [50])):
        directory = run.stage_dir("prepare") / role
        directory.mkdir()
        LlamaConfig(**TINY).to_json_file(directory / "config.json")
        history = [{"step": i + 1, "loss": 1.0, "lr": 0.0, "grad_norm": 1.0, "tokens": n, "seconds": 1.0,
                    "cpu_seconds": 1.0} for i, n in enumerate(steps)]  # fmt: skip
        (directory / MANIFEST).write_text(json.dumps({"key": role, "steps": len(steps), "history": history}))
    summaries = {
        "prepare": {
            "target": {"rows": 3, "cached": True, "steps": 2, "train_seconds": 123.4},
            "oracle": {"rows": 1, "cached": False, "steps": 1, "train_seconds": 9.0},
        },
        "memo": {"distinct_prompts": 40, "generated_prompts": 40, "resumed_prompts": 0, "tokens_generated": 1000},
        "unlearn": {"method": "meow", "steps": 2, "tokens": 400, "train_seconds": 29.0},
    }
    for stage, seconds in SECONDS.items():
        if stage == "evaluate":
            for model, (generated, model_seconds, cached, _) in EVALUATED.items():
                run.write_examples(model, per_example(generated - 4))
                run.log("evaluate_model", model=model, seconds=model_seconds, cached=cached)
        run.write_manifest(stage, {
            "stage": stage, "inputs_hash": "0", "config": {}, "completion": "0", "started": 0.0,
            "seconds": seconds, "versions": {}, "summary": summaries.get(stage, {}),
        })  # fmt: skip
        run.update_status(stages={stage: {"state": "succeeded", "seconds": seconds}})
        run.log("stage_finished", stage=stage, seconds=seconds)
    return run.path


def test_floor_of_a_fake_run(floor, tmp_path, monkeypatch, capsys):
    path = fake_run(tmp_path / "run")
    argv = ["run_floor.py", "--run", str(path), "--gflops-fp32", "0.001", "--gflops-bf16", "0.002", "--cores", "2"]
    monkeypatch.setattr("sys.argv", argv)
    floor.main()
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[-1])

    assert result["parameters"] == {"blocks": BLOCKS, "lm_head": HEAD}
    rows = {r["stage"]: r for r in result["stages"]}
    assert list(rows) == ["prepare", "invert", "memo", "select", "unlearn", "evaluate oracle", "evaluate target",
                          "evaluate unlearned-epoch-1", "evaluate unlearned", "evaluate (rest)", "report"]  # fmt: skip
    assert rows["prepare"]["tokens"] == {"trained": 350} and rows["prepare"]["cached"]
    assert rows["memo"]["tokens"] == {"generated": 1000}
    assert rows["unlearn"]["tokens"] == {"trained": 400}
    for model, (generated, seconds, cached, precision) in EVALUATED.items():
        row = rows[f"evaluate {model}"]
        assert row["tokens"] == {"scored": SCORED, "generated": generated, "prompt": PROMPTS}
        assert (row["measured_s"], row["cached"], row["precision"]) == (seconds, cached, precision)
    assert rows["evaluate (rest)"]["measured_s"] == pytest.approx(100.0 - 99.0)

    # Precision as the spec sets it explicitly (no `auto`: the same on every machine).
    assert [rows[s]["precision"] for s in ("prepare", "memo", "unlearn")] == ["fp32", "bf16", "bf16"]
    floors = {
        "prepare": 3 * FORWARD * 350 / (CORES * GFLOPS["fp32"]),
        "memo": FORWARD * 1000 / (CORES * GFLOPS["bf16"]),
        "unlearn": 3 * FORWARD * 400 / (CORES * GFLOPS["bf16"]),
        **{f"evaluate {m}": FORWARD * (PROMPTS + SCORED + g) / (CORES * GFLOPS[p]) for m, (g, _, _, p) in EVALUATED.items()},
    }
    for stage, expected in floors.items():
        assert rows[stage]["floor_s"] == pytest.approx(expected), stage
    assert rows["invert"]["floor_s"] == rows["select"]["floor_s"] == 0.0

    assert result["cold"]["floor_s"] == pytest.approx(sum(floors.values()))
    assert result["cold"]["measured_s"] == pytest.approx(sum(SECONDS.values()))
    # A rerun with the prepared models and the target's and oracle's evaluations cached.
    rerun = ("memo", "unlearn", "evaluate unlearned-epoch-1", "evaluate unlearned")
    assert result["cached_rerun"]["floor_s"] == pytest.approx(sum(floors[s] for s in rerun))
    assert result["cached_rerun"]["measured_s"] == pytest.approx(sum(SECONDS.values()) - 10.0 - 30.0 - 1.0)

    text = "\n".join(out)
    assert "the run ran on another machine: Fake CPU, 2 cores, bf16 emulated" in text
    assert "| **cold** |" in text and "| evaluate target | fp32 |" in text
    assert "the target came from the cache; it trained in 123 s" in text
