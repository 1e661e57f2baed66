"""``Project`` (Feast's ``feast.Project``): the project's name and description in the definitions.

Larder takes the project from ``feature_store.yaml``; a ``Project`` object is recorded only to be
reported by ``larder plan``/``apply`` (and checked against the configured name)."""

from typing import Dict, Optional


class Project:
    """A feature repo's project, as Feast declares it in Python."""

    def __init__(self, *, name: str, description: str = "", tags: Optional[Dict[str, str]] = None, owner: str = "",
                 **kwargs):
        if not name:
            raise ValueError("Project needs a name")
        self.name = name
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self):
        return f"Project(name={self.name!r})"
