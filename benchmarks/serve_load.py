"""Load test of the serve app: one model, one replica, 32-token answers at 1, 4 and 16 concurrent clients.

Closed loop: each client sends its next request when the last one returns. Then an overload burst
(far more simultaneous requests than the replica admits) shows that the excess is shed with 429
and that the server keeps serving. Prints a table; the last line is one JSON object.

    .venv/bin/python benchmarks/serve_load.py                 # SmolLM2, the measured configuration
    .venv/bin/python benchmarks/serve_load.py --model DIR --requests 8 --burst 64   # a quick smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2", help="Model spec (embedded name, HF directory, s3://).")
    p.add_argument("--concurrency", default="1,4,16", help="Client counts to measure, comma-separated.")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--requests", type=int, default=16, help="Requests per client count: max(this, 4 x clients).")
    p.add_argument("--burst", type=int, default=256, help="Simultaneous requests of the overload burst.")
    return p.parse_args()


def replica_cpu_seconds() -> float:
    """CPU time the model replica has used so far (all its threads).

    On a shared machine the replica's one core is not all its own; requests per replica
    CPU-second is what one replica does with a whole core.
    """
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:meow:model-bench" in part for part in process.info["cmdline"] or []):
            times = process.cpu_times()
            return times.user + times.system
    raise RuntimeError("model replica process not found")


async def closed_loop(client, body_for, clients: int, total: int) -> dict:
    latencies, tokens, codes = [], [], []
    issued = iter(range(total))

    async def worker() -> None:
        for i in issued:
            started = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=body_for(i))
            latencies.append(time.perf_counter() - started)
            codes.append(response.status_code)
            if response.status_code == 200:
                tokens.append(response.json()["usage"]["completion_tokens"])

    started, cpu = time.perf_counter(), replica_cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed, cpu = time.perf_counter() - started, replica_cpu_seconds() - cpu
    ok = codes.count(200)
    ordered = sorted(latencies)
    return {
        "rps": ok / elapsed,
        "rps_per_replica_cpu": ok / cpu,
        "replica_cpu_share": cpu / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "tokens": statistics.mean(tokens) if tokens else 0.0,
        "requests": len(codes),
        "errors_5xx": sum(c >= 500 for c in codes),
        "other_errors": sum(400 <= c < 500 for c in codes),
    }


async def burst(client, body_for, n: int) -> dict:
    responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=body_for(i)) for i in range(n)))
    codes = [r.status_code for r in responses]
    after = await client.post("/v1/chat/completions", json=body_for(0))
    ready = await client.get("/ready")
    return {
        "sent": n,
        "ok": codes.count(200),
        "rejected_429": codes.count(429),
        "errors_5xx": sum(c >= 500 for c in codes),
        "other": sum(c not in (200, 429) and c < 500 for c in codes),
        "serving_after": after.status_code == 200 and ready.status_code == 200,
    }


async def measure(url: str, args: argparse.Namespace) -> dict:
    import httpx

    from meow.data import load_tofu

    questions = [r.question for r in load_tofu("forget10")]

    def body_for(i: int) -> dict:
        question = questions[i % len(questions)]
        return {
            "model": "bench",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
        }

    limits = httpx.Limits(max_connections=args.burst + 8, max_keepalive_connections=args.burst + 8)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await closed_loop(client, body_for, 2, 4)  # warm the path end to end
        levels = {}
        for clients in [int(c) for c in args.concurrency.split(",")]:
            levels[clients] = await closed_loop(client, body_for, clients, max(args.requests, 4 * clients))
        return {"levels": levels, "overload": await burst(client, body_for, args.burst)}


def main() -> None:
    args = parse_args()
    from meow.cluster import ray_session
    from meow.serve import Limits, ModelEntry, ServeConfig
    from meow.serve.app import running
    from meow.testing.servers import free_port

    config = ServeConfig(models=[ModelEntry(name="bench", spec=args.model)], limits=Limits(), port=free_port())
    with ray_session(num_cpus=2), running(config) as url:
        load_before = os.getloadavg()[0]
        result = asyncio.run(measure(url, args))
    # The machine may be shared: other load slows the replica's one core down.
    load = (round(load_before, 1), round(os.getloadavg()[0], 1))
    levels, overload = result["levels"], result["overload"]
    limits = config.limits
    print(
        f"\nmodel {args.model}, one replica (1 CPU, vLLM fp32), chat completions of {args.max_tokens} tokens, greedy; "
        f"load average {load[0]} -> {load[1]} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'clients':>8} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'tokens/answer':>14} {'5xx':>5} "
        f"{'replica CPU':>12} {'req per replica CPU-s':>22}"
    )
    for clients, m in levels.items():
        print(
            f"{clients:>8} {m['requests']:>9} {m['rps']:>7.2f} {m['p50_ms']:>8.0f} {m['p95_ms']:>8.0f} "
            f"{m['tokens']:>14.1f} {m['errors_5xx']:>5} {m['replica_cpu_share']:>11.0%} "
            f"{m['rps_per_replica_cpu']:>22.2f}"
        )
    print(
        f"overload: {overload['sent']} simultaneous requests against {limits.max_ongoing_requests} running + "
        f"{limits.max_queued_requests} queued: {overload['ok']} answered, {overload['rejected_429']} got 429, "
        f"{overload['errors_5xx']} got 5xx; serving afterwards: {overload['serving_after']}"
    )
    summary = {
        "model": args.model,
        "max_tokens": args.max_tokens,
        "rps": {str(c): round(m["rps"], 2) for c, m in levels.items()},
        "p50_ms": {str(c): round(m["p50_ms"]) for c, m in levels.items()},
        "p95_ms": {str(c): round(m["p95_ms"]) for c, m in levels.items()},
        "tokens_per_answer": {str(c): round(m["tokens"], 1) for c, m in levels.items()},
        "rps_per_replica_cpu": {str(c): round(m["rps_per_replica_cpu"], 2) for c, m in levels.items()},
        "replica_cpu_share": {str(c): round(m["replica_cpu_share"], 2) for c, m in levels.items()},
        "errors_5xx": sum(m["errors_5xx"] for m in levels.values()) + overload["errors_5xx"],
        "overload": overload,
        "load_average": load,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
