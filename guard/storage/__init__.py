"""Storage: the engine, sessions and Alembic migrations shared by every capability."""
