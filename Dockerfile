# guard: the API image. Build: docker build -t guard .   Run: docker compose up
# The same steps run by hand on a machine without Docker: `make run` (see README).
# Production secrets, from the environment: GUARD_REDACTION_KEY, and GUARD_MASTER_KEY (or
# GUARD_KEYRING_PASSPHRASE) for the keyring; create the keyring once with `guard keys init`.
# For an HSM, mount the vendor's PKCS#11 module and set GUARD_KEY_PROVIDER=pkcs11 (keys/README.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUARD_ENV=production \
    GUARD_HOST=0.0.0.0 \
    GUARD_PORT=8400 \
    GUARD_CACHE_DIR=/opt/guard/cache \
    GUARD_POLICIES_DIR=/opt/guard/policies \
    GUARD_INCIDENT_RULES_DIR=/opt/guard/audit/rules \
    GUARD_RUNBOOKS_DIR=/opt/guard/audit/runbooks \
    GUARD_KEYS_DIR=/var/lib/guard/keys \
    GUARD_VAR_DIR=/var/lib/guard/var

WORKDIR /opt/guard
COPY pyproject.toml README.md ./
COPY guard ./guard
COPY policies ./policies
# incident detection rules (Sigma) and runbook / notice templates: data, like policies/
COPY audit ./audit
RUN pip install ".[hsm]" \
    && guard models install \
    && useradd --system --uid 10001 --home-dir /var/lib/guard --create-home guard \
    && mkdir -p /var/lib/guard/keys /var/lib/guard/var \
    && chown -R guard:guard /var/lib/guard

USER guard
EXPOSE 8400
# The model is baked into the image: a container never downloads anything at run time.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8400/readyz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["guard"]
CMD ["serve"]
