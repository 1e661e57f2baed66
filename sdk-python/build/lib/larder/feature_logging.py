"""Feast's ``feast.feature_logging``: ``LoggingConfig`` of a feature service.

Accepted so that Feast repos load unchanged; Larder does not log served features yet, and
``larder apply`` says so for each service that asks for it."""


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
