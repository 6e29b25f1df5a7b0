# Development image for docker-compose.dev.yml: web, default worker and host agent share it.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      busybox-static nftables libnftables1 iproute2 procps util-linux \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml .
RUN python - <<'PY' > /tmp/requirements.txt && pip install --no-cache-dir -r /tmp/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
COPY . .
RUN useradd --system --uid 10001 berth
ENV PYTHONPATH=/app/platform:/app DJANGO_SETTINGS_MODULE=config.settings.prod
