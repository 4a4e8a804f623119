"""Shared fixtures: tiny random models built on the fly, a local Ray, real servers on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# One thread per process on 2 cores: two threads per process is unstable under load.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MEOW_RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow (minutes on 2 CPU cores): set MEOW_RUN_SLOW=1 or run `make test-all`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of `benchmarks/` (not a package) by name, to test its pure parts."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama + tokenizer + chat template, loadable by both engines."""
    from meow.testing.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray on 127.0.0.1 shared by the session's tests."""
    import ray

    from meow.cluster import ray_session

    with ray_session(num_cpus=2):
        yield ray


@pytest.fixture()
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1; the AWS_* environment points at it."""
    from meow.testing.servers import moto_s3_server

    with moto_s3_server() as env:
        yield env
