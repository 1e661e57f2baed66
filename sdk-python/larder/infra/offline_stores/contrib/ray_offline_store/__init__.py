"""Feast's Ray offline store: its ``RaySource``."""
