"""Build and start the serve app: one deployment per model behind one HTTP ingress."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ray import serve
from ray.serve.config import BackpressureConfig

from meow.serve.config import ServeConfig
from meow.serve.gateway import Gateway
from meow.serve.model import ModelServer

log = logging.getLogger(__name__)


def build_app(config: ServeConfig):
    """The Serve application (not yet running) for `config`."""
    limits = config.limits
    models = {}
    for entry in config.models:
        deployment = serve.deployment(
            ModelServer,
            name=f"model-{entry.name}",
            num_replicas=entry.num_replicas,
            ray_actor_options={
                "num_cpus": entry.num_cpus,
                "num_gpus": entry.num_gpus,
                "memory": int(entry.engine.memory_per_actor),
            },
            max_ongoing_requests=limits.max_ongoing_requests,
            max_queued_requests=limits.max_queued_requests,
            # A model that cannot load (bad path, no memory) should fail the deploy quickly.
            max_constructor_retry_count=2,
        )
        models[entry.name] = deployment.bind(entry, limits)
    # The ingress must hold every request the model queues can: otherwise requests would wait
    # at the ingress (unbounded latency) instead of getting a 429 from the model's bounded queue.
    capacity = (
        sum(e.num_replicas * limits.max_ongoing_requests + limits.max_queued_requests for e in config.models) + 32
    )
    gateway = serve.deployment(
        Gateway,
        name="gateway",
        # I/O only: it must not take a core from the engines.
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=capacity,
        max_queued_requests=capacity,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=limits.retry_after_s),
    )
    return gateway.bind(models, config)


def start(config: ServeConfig) -> str:
    """Start Serve's HTTP proxy on `config.host:port` and deploy the app; returns its base URL.

    Returns once every replica has loaded and warmed its engine. Ray must be initialised.
    """
    serve.start(http_options={"host": config.host, "port": config.port, "request_timeout_s": config.request_timeout_s})
    serve.run(build_app(config), name=config.app_name, route_prefix="/")
    log.info("serving %s on %s", ", ".join(m.name for m in config.models), config.url)
    return config.url


def shutdown() -> None:
    serve.shutdown()


@contextmanager
def running(config: ServeConfig) -> Iterator[str]:
    """Serve `config` for the duration of a `with` block (tests, benchmarks); yields the base URL."""
    try:
        yield start(config)
    finally:
        shutdown()


def app_builder(args: dict):
    """Entry point for Serve config files and KubeRay's RayService.

    `import_path: meow.serve.app:app_builder` with `args:` a ServeConfig (`models: [{name, spec}]`,
    `limits`, ...); host and port then come from the config file's `http_options`.
    """
    return build_app(ServeConfig.model_validate(args))
