"""Feast's ``feast.feature_logging``: ``LoggingConfig`` of a feature service.

A ``FileLoggingDestination`` is registered with the service (Feast's clients read it back, and
``write_logged_features`` writes the logs there); other destinations (warehouses) are not, and
``larder apply`` says so. With ``feature_server: {feature_logging: {enabled: true}}`` in
``feature_store.yaml``, ``larder serve`` logs the features it serves for the service there."""

from typing import Optional


class LoggingDestination:
    """Where served features would be logged."""


class LoggingConfig:
    """``LoggingConfig(destination=..., sample_rate=1.0)``."""

    def __init__(self, destination: LoggingDestination, sample_rate: float = 1.0):
        if not 0.0 <= float(sample_rate) <= 1.0:
            raise ValueError(f"LoggingConfig: sample_rate {sample_rate} is not between 0 and 1")
        self.destination = destination
        self.sample_rate = float(sample_rate)

    def __repr__(self):
        return f"LoggingConfig(destination={self.destination!r}, sample_rate={self.sample_rate})"


def logging_dict(config) -> Optional[dict]:
    """The registry form of a ``LoggingConfig`` (Larder's or Feast's object) with a file
    destination; ``None`` without one."""
    destination = getattr(config, "destination", None)
    path = getattr(destination, "path", None)
    if config is None or not path:
        return None
    return {"sample_rate": float(getattr(config, "sample_rate", 1.0)), "path": str(path),
            "partition_by": list(getattr(destination, "partition_by", None) or [])}
