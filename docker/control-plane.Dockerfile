# The meow control plane (job API, scheduler, kuberay backend). From the repository root:
#   docker build -f docker/control-plane.Dockerfile -t meow/control-plane:0.1.0 .
# It runs no model: no vLLM, and the CPU build of torch (the spec schema imports meow's configs).

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 meow && useradd --uid 1000 --gid 1000 --create-home meow
WORKDIR /opt/meow
COPY pyproject.toml README.md ./
COPY meow ./meow
COPY platform/meow_platform ./platform/meow_platform
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install .
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 1000:1000
WORKDIR /home/meow
EXPOSE 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MEOW_PLATFORM_PORT', '8700'), timeout=3)"
ENTRYPOINT ["meow"]
CMD ["platform", "serve"]
