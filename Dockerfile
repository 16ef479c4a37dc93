# Image of the dialer daemon (dialer-server). Built by docker-compose.yml; can
# also run on its own: docker build -t dialer . && docker run dialer --help
FROM python:3.11-slim

# Unbuffered output so log lines reach `docker logs` as they are written; no
# .pyc files since the code never changes inside a running container.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The daemon needs no privileges: it only talks to AMI, PostgreSQL and serves
# HTTP on an unprivileged port. A fixed uid keeps file ownership predictable for
# operators who bind-mount files into /app.
RUN groupadd --system --gid 10001 dialer \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/dialer dialer

# README*/LICENSE* are globs so the build does not break while they are absent;
# pyproject.toml names README.md as the readme, which setuptools reads at build.
COPY pyproject.toml README* LICENSE* ./
COPY dialer_server/ ./dialer_server/
COPY strategies/ ./strategies/
COPY flows/ ./flows/

# Installed as root into the system site-packages, so the runtime user cannot
# modify the code it runs.
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

USER dialer

EXPOSE 8080

# No curl in the slim image: python's urllib does the probe. urlopen raises on
# connection errors and on HTTP >= 400, so any failure exits non-zero. The port
# follows DIALER_HTTP_PORT when an operator moves the HTTP server.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DIALER_HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["dialer-server"]
CMD ["run"]
