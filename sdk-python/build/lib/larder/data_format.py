"""Message formats of stream sources (Feast's ``feast.data_format``)."""


class StreamFormat:
    """Base class of stream message formats."""


class JsonFormat(StreamFormat):
    """JSON messages; ``schema_json`` is the Spark DDL schema Feast keeps (Larder reads the
    message fields by name and types them from the feature view)."""

    def __init__(self, schema_json: str = ""):
        self.schema_json = schema_json
