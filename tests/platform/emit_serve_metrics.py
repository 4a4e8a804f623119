"""Run as a script by test_platform_end_to_end: the serve app's metrics class records one request from a
detached Ray actor on the cluster at RAY_ADDRESS, whose metrics port Prometheus scrapes.

A separate process because Ray reads its loopback and auth settings when it is imported; the
caller passes `meow.cluster.local_ray_env()` in the environment.
"""

import ray


@ray.remote(num_cpus=0)
class Ingress:
    def record(self) -> None:
        from meow.serve.metrics import ServeMetrics

        self.metrics = ServeMetrics()
        self.metrics.record("tiny", "/v1/completions", 200, 0.05, {"prompt_tokens": 7, "completion_tokens": 3})


if __name__ == "__main__":
    ray.init(logging_level="ERROR")
    # Detached: it outlives this driver, so its metrics keep being exported while Prometheus scrapes.
    ingress = Ingress.options(name="meow-e2e-ingress", lifetime="detached").remote()
    ray.get(ingress.record.remote())
