"""The serve app on a real local Ray Serve (127.0.0.1) with two tiny vLLM models, through HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from meow.engines import EngineConfig, SamplingConfig, create_engine
from meow.models.templates import question_prompt
from meow.serve import Limits, ModelEntry, ServeConfig
from meow.testing.servers import free_port

TOKEN = "test-token"
QUESTION = "Who wrote the book about the author born in Kuwait City?"
ENGINE = EngineConfig(kv_cache_bytes=64 << 20, max_model_len=512)
LIMITS = Limits(
    max_prompt_tokens=256,
    max_tokens=64,
    max_n=4,
    max_prompts=4,
    max_body_bytes=4096,
    max_ongoing_requests=2,
    max_queued_requests=2,
)


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    from meow.testing.tiny_model import build_tiny_llama

    return {"original": tiny_model_dir, "unlearned": build_tiny_llama(tmp_path_factory.mktemp("tiny-1"), seed=1)}


@pytest.fixture(scope="module")
def url(ray_local, models):
    from meow.serve.app import running

    entries = [ModelEntry(name=name, spec=str(path), engine=ENGINE) for name, path in models.items()]
    config = ServeConfig(models=entries, limits=LIMITS, port=free_port(), api_token=TOKEN)
    with running(config) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def reference(models):
    """The transformers engine on the same weights: what the served vLLM answers must match."""
    return {name: create_engine(path, EngineConfig(name="hf")) for name, path in models.items()}


def test_models_are_listed(client):
    assert sorted(m.id for m in client.models.list()) == ["original", "unlearned"]


def test_greedy_completions_match_the_reference_engine_per_model(client, reference):
    prompt = "The author born in Kuwait City"
    for name, engine in reference.items():
        served = client.completions.create(model=name, prompt=prompt, max_tokens=12, temperature=0)
        [expected] = engine.generate([prompt], SamplingConfig(max_new_tokens=12))
        assert served.choices[0].text == expected.text
        assert served.usage.completion_tokens == len(expected.token_ids)
    # The two models really are different models behind the same endpoint.
    a, b = (reference[n].generate([prompt], SamplingConfig(max_new_tokens=12))[0].text for n in reference)
    assert a != b


def test_chat_renders_the_question_prompt_meow_evaluates_with(client, reference):
    engine = reference["original"]
    chat = client.chat.completions.create(
        model="original", messages=[{"role": "user", "content": QUESTION}], max_tokens=10, temperature=0
    )
    [expected] = engine.generate([question_prompt(engine.tokenizer, QUESTION)], SamplingConfig(max_new_tokens=10))
    assert chat.choices[0].message.content == expected.text
    assert chat.usage.prompt_tokens == len(engine.encode(question_prompt(engine.tokenizer, QUESTION)))


def test_chat_continues_a_partial_answer(client, reference):
    engine = reference["unlearned"]
    partial = "The author's name is"
    chat = client.chat.completions.create(
        model="unlearned",
        messages=[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": partial}],
        max_tokens=8,
        temperature=0,
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    prompt = question_prompt(engine.tokenizer, QUESTION) + partial
    assert chat.choices[0].message.content == engine.generate([prompt], SamplingConfig(max_new_tokens=8))[0].text


def test_prompt_logprobs_with_echo_match_the_reference_engine(client, reference):
    engine = reference["original"]
    text = question_prompt(engine.tokenizer, QUESTION) + "Basil Mahfouz Al-Kuwaiti."
    out = client.completions.create(model="original", prompt=text, max_tokens=0, echo=True, logprobs=0)
    logprobs = out.choices[0].logprobs
    ids = engine.encode(text)
    assert out.choices[0].text == text
    assert len(logprobs.tokens) == len(ids) and logprobs.token_logprobs[0] is None
    [expected] = engine.score([ids[:1]], [ids[1:]])
    assert logprobs.token_logprobs[1:] == pytest.approx(expected, abs=2e-3)
    assert "".join(logprobs.tokens) == text
    assert logprobs.text_offset[-1] == len(text) - len(logprobs.tokens[-1])


def test_token_id_prompts_and_tokenize(http, reference):
    engine = reference["original"]
    messages = [{"role": "user", "content": QUESTION}]
    tokens = http.post("/tokenize", json={"model": "original", "messages": messages}).json()
    assert tokens["tokens"] == engine.encode(question_prompt(engine.tokenizer, QUESTION))
    body = {"model": "original", "prompt": tokens["tokens"], "max_tokens": 4, "temperature": 0, "logprobs": 0}
    out = http.post("/v1/completions", json=body).json()
    [expected] = engine.generate([tokens["tokens"]], SamplingConfig(max_new_tokens=4))
    assert out["choices"][0]["text"] == expected.text
    assert out["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(
        engine.score([tokens["tokens"]], [expected.token_ids])[0], abs=2e-3
    )


def test_seeded_samples_are_reproducible_and_distinct(client):
    def sample():
        out = client.completions.create(model="original", prompt="Who", max_tokens=8, temperature=1.0, n=3, seed=7)
        return [c.text for c in out.choices]

    first = sample()
    assert len(first) == 3 and len(set(first)) > 1
    assert sample() == first


BAD_REQUESTS = [
    ("malformed JSON", {"content": b'{"model": "original", '}, 400, None),
    ("not an object", {"json": ["original"]}, 400, None),
    ("unknown field", {"json": {"model": "original", "prompt": "x", "best_of": 3}}, 400, "best_of"),
    ("unknown model", {"json": {"model": "gpt-4", "prompt": "x"}}, 404, "model"),
    ("max_tokens over the cap", {"json": {"model": "original", "prompt": "x", "max_tokens": 65}}, 400, "max_tokens"),
    ("n over the cap", {"json": {"model": "original", "prompt": "x", "n": 5}}, 400, "n"),
    ("too many prompts", {"json": {"model": "original", "prompt": ["x"] * 5}}, 400, "prompt"),
    ("prompt too long", {"json": {"model": "original", "prompt": "word " * 600}}, 400, "prompt"),
    ("token id out of range", {"json": {"model": "original", "prompt": [1, 10**6]}}, 400, "prompt"),
    ("body too large", {"json": {"model": "original", "prompt": "x" * 5000}}, 413, None),
    ("streaming", {"json": {"model": "original", "prompt": "x", "stream": True}}, 400, "stream"),
    ("top-k logprobs", {"json": {"model": "original", "prompt": "x", "logprobs": 3}}, 400, "logprobs"),
    ("nothing to do", {"json": {"model": "original", "prompt": "x", "max_tokens": 0}}, 400, None),
]


@pytest.mark.parametrize("kwargs,status,param", [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_4xx_json_errors(http, kwargs, status, param):
    response = http.post("/v1/completions", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["code"] == status
    if param:
        assert error["param"] == param


def test_bad_chat_requests(http):
    user = [{"role": "user", "content": "hi"}]
    cases = [
        ({"model": "original", "messages": []}, "messages"),
        ({"model": "original", "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        (
            {"model": "original", "messages": user, "continue_final_message": True, "add_generation_prompt": False},
            "messages",
        ),
        ({"model": "original", "messages": user, "max_completion_tokens": 1000}, "max_tokens"),
    ]
    for body, param in cases:
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_auth_is_required_on_the_api_but_not_on_health(url):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{url}/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200 and ready.json()["models"] == {"original": True, "unlearned": True}


def test_unknown_routes_answer_json(http):
    response = http.get("/v2/everything")
    assert response.status_code == 404 and response.json()["error"]["code"] == 404


def test_overload_answers_429_and_the_server_keeps_serving(url, http):
    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, headers=http.headers, timeout=120) as c:
            body = {"model": "unlearned", "prompt": "Who", "max_tokens": 48, "temperature": 0}
            return await asyncio.gather(*(c.post("/v1/completions", json=body) for _ in range(24)))

    responses = asyncio.run(flood())
    codes = [r.status_code for r in responses]
    # 2 running + 2 queued per replica; the rest are shed, none fails.
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 4
    rejected = next(r for r in responses if r.status_code == 429)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["type"] == "rate_limit_error"
    after = http.post("/v1/completions", json={"model": "unlearned", "prompt": "Who", "max_tokens": 4})
    assert after.status_code == 200


def test_http_listens_on_loopback_only(url):
    import psutil

    port = int(url.rsplit(":", 1)[1])
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_request_metrics_reach_prometheus(ray_local, http):
    """The app's metrics appear on Ray's metrics port, where Prometheus scrapes Ray and Serve."""
    from prometheus_client.parser import text_string_to_metric_families

    http.post("/v1/completions", json={"model": "original", "prompt": "Who", "max_tokens": 3})
    port = ray_local.nodes()[0]["MetricsExportPort"]
    wanted = {"ray_meow_serve_requests", "ray_meow_serve_request_latency_ms", "ray_meow_serve_tokens"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        families = {
            f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        }
        if wanted <= families.keys():
            break
        time.sleep(2)
    assert wanted <= families.keys()
    ok = [
        s
        for s in families["ray_meow_serve_requests"].samples
        if s.labels.get("model") == "original" and s.labels.get("route") == "completions" and s.labels["code"] == "200"
    ]
    assert ok and ok[0].value >= 1
    tokens = {
        s.labels["kind"] for s in families["ray_meow_serve_tokens"].samples if s.labels.get("model") == "original"
    }
    assert tokens == {"prompt", "completion"}
