"""PII detection: Presidio's analyzer assembled by guard, with guard's own recognizers."""
