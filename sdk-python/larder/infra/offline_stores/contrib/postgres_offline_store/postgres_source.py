"""``PostgreSQLSource`` (Feast's
``feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source.PostgreSQLSource``)."""

from typing import Dict, Optional

from larder.data_source import DataSource


class PostgreSQLSource(DataSource):
    """The rows of a table or query in the database of ``offline_store: {type: postgres}``:
    ``PostgreSQLSource(name="stats", query="SELECT * FROM stats", timestamp_field="event_timestamp")``.

    Larder reads them into its offline engine (the point-in-time joins run there, not in
    PostgreSQL) and does not write to them: a push source backed by one pushes online only.
    """

    def __init__(
        self,
        name: Optional[str] = None,
        query: Optional[str] = None,
        table: Optional[str] = None,
        timestamp_field: Optional[str] = "",
        created_timestamp_column: Optional[str] = "",
        field_mapping: Optional[Dict[str, str]] = None,
        description: Optional[str] = "",
        tags: Optional[Dict[str, str]] = None,
        owner: Optional[str] = "",
    ):
        if not name and not table:
            raise ValueError("PostgreSQLSource needs a name (or a table, which names it)")
        if not query and not table:
            raise ValueError(f"PostgreSQLSource {name!r} needs a query or a table")
        super().__init__(name=name or table, description=description or "", tags=tags, owner=owner or "")
        self.query = query or ""
        self.table = table or ""
        self.timestamp_field = timestamp_field or ""
        self.created_timestamp_column = created_timestamp_column or None
        self.field_mapping = dict(field_mapping or {})

    def get_table_query_string(self) -> str:
        """The relation as it goes after ``FROM``: the table, or the query in parentheses (as Feast's)."""
        return self.table or f"({self.query})"

    def to_dict(self) -> dict:
        return {
            "type": "file",
            **self._meta(),
            "path": "",
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
            "postgres": {"table": self.table, "query": self.query},
        }
