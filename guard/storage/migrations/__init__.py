"""Alembic migration environment and revisions (shipped as package data)."""
