# guard: redaction engine image. Build: docker build -t guard .
# Run:   echo "call me at (845) 450-5693" | docker run -i --rm -e GUARD_REDACTION_KEY=... guard
# The same steps run by hand on a machine without Docker: `make setup` (see README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUARD_ENV=production \
    GUARD_CACHE_DIR=/opt/guard/cache \
    GUARD_POLICIES_DIR=/opt/guard/policies \
    GUARD_KEYS_DIR=/var/lib/guard/keys

WORKDIR /opt/guard
COPY pyproject.toml README.md ./
COPY guard ./guard
COPY policies ./policies
RUN pip install . \
    && guard models install \
    && useradd --system --uid 10001 --home-dir /var/lib/guard --create-home guard \
    && mkdir -p /var/lib/guard/keys && chown -R guard:guard /var/lib/guard

USER guard
# The model is baked into the image: a container never downloads anything at run time.
HEALTHCHECK --interval=30s --timeout=10s --retries=3 CMD ["guard", "models", "status"]
ENTRYPOINT ["guard"]
CMD ["redact"]
