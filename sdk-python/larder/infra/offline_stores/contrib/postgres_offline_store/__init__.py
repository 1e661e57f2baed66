"""Feast's PostgreSQL offline store: its ``PostgreSQLSource``."""
