"""Offline store sources."""
