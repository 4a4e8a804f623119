"""The HTTP ingress: OpenAI-style routes, auth, request bounds, back-pressure and metrics.

Everything that does not need a tokenizer is checked here, before a request takes a replica's
slot. Requests go to the model's deployment through a handle whose queue is bounded
(`Limits.max_queued_requests`): when it is full Serve raises `BackPressureError`, answered
with 429 and `Retry-After`, so overload sheds requests instead of piling up latency or failing.
Nothing here logs request bodies: prompts may be the very facts being forgotten.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException

from meow.serve.config import ServeConfig
from meow.serve.protocol import ApiError, ChatCompletionRequest, CompletionRequest, TokenizeRequest

log = logging.getLogger(__name__)

# A replica that cannot answer a trivial call this fast is not ready to serve.
READY_TIMEOUT_S = 5

app = FastAPI(title="meow serve", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Unknown routes and methods answer in the same JSON error shape as everything else."""
    return _error_response(ApiError(error.status_code, str(error.detail), type="not_found_error"))


def _error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


@serve.ingress(app)
class Gateway:
    def __init__(self, models: dict, config: ServeConfig):
        from meow.serve.metrics import ServeMetrics

        self.models = models  # name -> DeploymentHandle
        self.config = config
        self.limits = config.limits
        self.metrics = ServeMetrics()
        self.created = int(time.time())

    @app.get("/health")
    async def health(self) -> dict:
        """Liveness: the ingress answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(self) -> JSONResponse:
        """Readiness: every model's replica answers (and its engine loop is alive)."""
        states = {}
        for name, handle in self.models.items():
            try:
                states[name] = bool(await asyncio.wait_for(handle.ready.remote(), READY_TIMEOUT_S))
            except Exception:  # noqa: BLE001 - any failure means "not ready", reported per model
                states[name] = False
        ok = all(states.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "models": states}, status_code=200 if ok else 503
        )

    @app.get("/v1/models")
    async def list_models(self, request: Request) -> JSONResponse:
        return await self._answer(request, "models", None, None)

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> JSONResponse:
        return await self._answer(request, "completions", CompletionRequest, "completions")

    @app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> JSONResponse:
        return await self._answer(request, "chat", ChatCompletionRequest, "chat")

    @app.post("/tokenize")
    async def tokenize(self, request: Request) -> JSONResponse:
        return await self._answer(request, "tokenize", TokenizeRequest, "tokenize")

    async def _answer(self, request: Request, route: str, schema: type[BaseModel] | None, method: str | None):
        started = time.perf_counter()
        model, code, usage, headers = "-", 500, None, None
        try:
            self._authorize(request)
            if schema is None:
                body = {"object": "list", "data": [self._model_card(name) for name in self.models]}
            else:
                parsed = await self._parse(request, schema)
                model = self._known(parsed.model)
                self._check_limits(parsed)
                body = await getattr(self.models[model], method).remote(parsed)
                if isinstance(body, ApiError):
                    raise body
                usage = body.get("usage")
            code = 200
            return JSONResponse(body)
        except ApiError as e:
            code = e.status
            if code == 401:
                headers = {"WWW-Authenticate": "Bearer"}
            return _error_response(e, headers)
        except BackPressureError:
            code, headers = 429, {"Retry-After": str(self.limits.retry_after_s)}
            message = f"model {model} is at capacity; retry after {self.limits.retry_after_s} s"
            return _error_response(ApiError(429, message, type="rate_limit_error"), headers)
        except DeploymentUnavailableError:
            code = 503
            return _error_response(ApiError(503, f"model {model} is not available", type="service_unavailable"))
        except Exception:  # noqa: BLE001 - answer 500 in JSON; the traceback goes to the replica log
            log.exception("%s request for model %s failed", route, model)
            return _error_response(ApiError(500, "internal error", type="server_error"))
        finally:
            self.metrics.record(model, route, code, time.perf_counter() - started, usage)

    def _authorize(self, request: Request) -> None:
        token = self.config.api_token
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise ApiError(401, "missing or wrong bearer token", type="authentication_error")

    async def _parse(self, request: Request, schema: type[BaseModel]) -> BaseModel:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        raw = await request.body()
        if len(raw) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        try:
            return schema.model_validate(data)
        except ValidationError as e:
            # Location and reason only: pydantic would also echo the (possibly sensitive) input.
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ApiError(400, f"{where}: {first['msg']}" if where else first["msg"], param=where or None) from None

    def _known(self, model: str) -> str:
        if model not in self.models:
            raise ApiError(
                404, f"model {model!r} is not served here; see GET /v1/models", param="model", type="not_found_error"
            )
        return model

    def _check_limits(self, request: BaseModel) -> None:
        limits = self.limits
        n = getattr(request, "n", 1)
        if n > limits.max_n:
            raise ApiError(400, f"n={n} exceeds this server's limit of {limits.max_n}", param="n")
        if isinstance(request, CompletionRequest):
            tokens, param = request.max_tokens, "max_tokens"
            if len(request.prompts) > limits.max_prompts:
                raise ApiError(400, f"at most {limits.max_prompts} prompts per request", param="prompt")
            if not request.prompts:
                raise ApiError(400, "prompt is empty", param="prompt")
        elif isinstance(request, ChatCompletionRequest):
            tokens, param = request.token_budget(default=0), "max_tokens"
        else:
            return
        if tokens > limits.max_tokens:
            raise ApiError(400, f"{param}={tokens} exceeds this server's limit of {limits.max_tokens}", param=param)

    def _model_card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "meow"}
