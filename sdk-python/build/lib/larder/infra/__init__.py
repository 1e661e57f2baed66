"""Backends (mirrors Feast's ``feast.infra`` module paths)."""
