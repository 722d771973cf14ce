"""The HTTP API: FastAPI app, problem+json errors, request ids, limits, metrics, security."""
