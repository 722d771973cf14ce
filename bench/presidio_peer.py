"""The peer for bench/api.py: vanilla Presidio behind a minimal FastAPI endpoint.

Default AnalyzerEngine and AnonymizerEngine (replace with <ENTITY_TYPE>), the same spaCy model
as guard; no authentication, no authorization, no audit. Run by bench/api.py with uvicorn.
"""

from __future__ import annotations

from fastapi import FastAPI
from presidio_anonymizer import AnonymizerEngine
from pydantic import BaseModel

from guard.config import get_settings
from guard.detection.baseline import VanillaPresidio

_analyzer = VanillaPresidio(get_settings()).analyzer
_anonymizer = AnonymizerEngine()

app = FastAPI()


class Body(BaseModel):
    """One text."""

    text: str


@app.post("/redact")
def redact(body: Body) -> dict[str, str]:
    """Analyze and anonymize one text with Presidio's defaults."""
    results = _analyzer.analyze(text=body.text, language="en")
    return {"text": _anonymizer.anonymize(text=body.text, analyzer_results=results).text}
