# The meow control plane (job API, scheduler, kuberay backend). From the repository root:
#   docker build -f docker/control-plane.Dockerfile -t meow/control-plane:0.1.0 .
# It runs no model and imports neither torch, transformers, vLLM nor Ray (the kuberay backend
# submits RayJobs; the jobs run in the Ray image). pyproject.toml's core dependencies include torch
# and transformers, which the pipeline needs, so the package goes in without its dependencies and
# the control plane's own come after, with pyproject.toml's version specifiers (the core ones it
# uses, the `platform` extra's) and the `postgres` extra (tests/deploy/test_images.py checks the
# list against pyproject.toml and that the control plane's modules import without the heavy
# packages).

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 meow && useradd --uid 1000 --gid 1000 --create-home meow
WORKDIR /opt/meow
COPY pyproject.toml README.md ./
COPY meow ./meow
COPY platform/meow_platform ./platform/meow_platform
RUN pip install --no-deps . \
    && pip install "pydantic>=2.10,<3" "pydantic-settings==2.16.3" "pyyaml>=6" "click>=8.1" "filelock>=3.16" \
       "fsspec==2026.9.0" "s3fs==2026.9.0" "prometheus-client==0.26.0" "httpx>=0.27" "fastapi>=0.115" \
       "uvicorn>=0.32" "sqlalchemy>=2.0" "alembic>=1.14" "kubernetes>=31" "jsonschema>=4.23" \
       "psycopg[binary]==3.3.9"
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 1000:1000
WORKDIR /home/meow
EXPOSE 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MEOW_PLATFORM_PORT', '8700'), timeout=3)"
ENTRYPOINT ["meow"]
CMD ["platform", "serve"]
