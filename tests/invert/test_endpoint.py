"""Inversion through an OpenAI-compatible endpoint: a canned test server on 127.0.0.1, a real client."""

import threading
import time
from collections import defaultdict

import pytest

from meow.data import QARecord
from meow.invert.config import EndpointConfig, InvertConfig
from meow.invert.stage import INSTRUCTION, attempt_seed, invert
from meow.testing.servers import LOOPBACK, free_port

RECORDS = [
    QARecord(3, "What gender is author Basil Mahfouz Al-Kuwaiti?", "Author Basil Mahfouz Al-Kuwaiti is male."),
    QARecord(8, "Where was Nikolai Abilov born?", "Nikolai Abilov was born in Astana."),
]
# The test server's replies to the n-th request about a fact (keyed by the user message).
CANNED = {
    3: ["1. He is a pilot.\n2. He is a pilot.\n", "She is tall.\nThey are a cat.\nIt is a hat.", "It is a dog."],
    8: ["Question: Where was he born?"] * 3,
}


@pytest.fixture()
def canned_chat_server():
    """Test server: a FastAPI chat-completions endpoint that answers from CANNED and records requests."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()
    seen: list[dict] = []
    asked: dict[int, int] = defaultdict(int)
    failed = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if not failed:  # the first request fails once: the client must retry it
            failed.append(True)
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        seen.append({**body, "authorization": request.headers.get("authorization")})
        fact = next(r.index for r in RECORDS if r.question in body["messages"][1]["content"])
        reply = CANNED[fact][asked[fact]]
        asked[fact] += 1
        return {
            "id": "canned", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
        }  # fmt: skip

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://{LOOPBACK}:{port}/v1", seen
    server.should_exit = True
    thread.join(10)


def test_endpoint_rounds_until_enough_candidates(canned_chat_server, monkeypatch):
    base_url, seen = canned_chat_server
    monkeypatch.setenv("MEOW_TEST_KEY", "secret")
    endpoint = EndpointConfig(base_url=base_url, model="canned-model", api_key_env="MEOW_TEST_KEY", concurrency=2)
    config = InvertConfig(endpoint=endpoint, num_candidates=3, max_attempts=3, seed=42)
    out = invert(RECORDS, config)

    first, second = out
    assert first["candidates"] == ["He is a pilot.", "She is tall.", "They are a cat."]
    assert not first["short"] and first["attempts"] == 2
    assert first["rejected"] == {"empty": 1, "header": 0, "echo": 0, "duplicate": 1, "repetition": 0, "restatement": 0, "secret": 0}
    assert second["candidates"] == [] and second["short"] and second["attempts"] == 3
    assert second["rejected"]["echo"] == 3
    assert first["provenance"]["seeds"] == [attempt_seed(42, 3, 0), attempt_seed(42, 3, 1)]
    assert first["provenance"]["generator"] == "canned-model" and first["provenance"]["base_url"] == base_url

    # Round 1 asks both facts, rounds 2-3 only the one still short: 2 + 1 + 1 answered requests.
    assert len(seen) == 5
    request = next(r for r in seen if r["seed"] == attempt_seed(42, 3, 0))
    assert request["messages"] == [
        {"role": "system", "content": INSTRUCTION.format(n=3)},
        {"role": "user", "content": f"Question: {RECORDS[0].question} Answer: {RECORDS[0].answer}"},
    ]
    assert request["model"] == "canned-model" and request["temperature"] == 0.9 and request["max_tokens"] == 512
    assert request["authorization"] == "Bearer secret"


@pytest.mark.parametrize("per_round, answered", [(2, 5), (3, 6)])
def test_rounds_of_several_attempts_keep_the_first_survivors(canned_chat_server, monkeypatch, per_round, answered):
    base_url, seen = canned_chat_server
    monkeypatch.setenv("MEOW_TEST_KEY", "secret")
    # One request at a time, so that a fact's n-th request is its attempt n (the canned replies' order).
    endpoint = EndpointConfig(base_url=base_url, model="canned-model", api_key_env="MEOW_TEST_KEY", concurrency=1)
    config = InvertConfig(endpoint=endpoint, num_candidates=3, max_attempts=3, attempts_per_round=per_round, seed=42)
    rounds = []
    first, second = invert(RECORDS, config, on_round=rounds.append)
    # The same candidates as one attempt per round: a reply asked but not needed is not used.
    assert first["candidates"] == ["He is a pilot.", "She is tall.", "They are a cat."] and first["attempts"] == 2
    assert first["provenance"]["seeds"] == [attempt_seed(42, 3, 0), attempt_seed(42, 3, 1)]
    assert second["short"] and second["attempts"] == 3
    # Rounds of 2: both facts twice, then the short one once more; a round of 3: everything at once.
    assert len(seen) == answered
    expected = [(1, 2, 4), (2, 1, 1)] if per_round == 2 else [(1, 2, 6)]
    assert [(r["round"], r["facts"], r["prompts"]) for r in rounds] == expected
    assert all(r["seconds"] >= 0 for r in rounds)


def test_endpoint_needs_its_key(monkeypatch):
    monkeypatch.delenv("MEOW_TEST_KEY", raising=False)
    endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="MEOW_TEST_KEY")
    with pytest.raises(RuntimeError, match="environment variable MEOW_TEST_KEY"):
        invert(RECORDS, InvertConfig(endpoint=endpoint))
