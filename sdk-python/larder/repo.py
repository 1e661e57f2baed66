"""The repo exporter: imports a feature repo's Python files and prints the registry document
(JSON) that ``larder apply`` reads.

    python -m larder.repo path/to/feature_repo [--out FILE]

Objects are collected from the modules' globals (as Feast's ``parse_repo`` does), including
sources reachable only through a view or a push source. The same object imported by several
files counts once; two different objects with the same name are an error.
"""

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from larder.data_source import DataSource, KafkaSource, PushSource
from larder.entity import Entity
from larder.feature_service import FeatureService
from larder.feature_view import FeatureView
from larder.feast_compat import feast_kind, not_acted_on, warnings_of
from larder.feast_compat import to_dict as feast_to_dict
from larder.on_demand_feature_view import OnDemandFeatureView
from larder.project import Project

SKIP_DIRS = {"__pycache__", "data", ".venv", "venv", "node_modules", ".git"}


class RepoError(Exception):
    """The repo cannot be read."""


def python_files(repo: Path) -> List[Path]:
    """Definition files of a repo: ``*.py`` files, recursively, minus hidden and data folders
    and those listed in ``.feastignore`` / ``.larderignore``."""
    ignored = set()
    for name in (".feastignore", ".larderignore"):
        f = repo / name
        if f.exists():
            for line in f.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    ignored.update(p.resolve() for p in repo.glob(line))
    out = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for f in sorted(files):
            p = Path(root) / f
            if f.endswith(".py") and not f.startswith(".") and p.resolve() not in ignored:
                if not any(parent in ignored for parent in p.resolve().parents):
                    out.append(p)
    return out


def _user_error(rel: Path, path: Path, e: BaseException) -> str:
    """`file:line: Exception: message` for an exception raised while importing a definition
    file, with the line in that file (or the innermost line of the repo) that raised it."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    line = None
    for f in frames:
        if Path(f.filename).resolve() == path.resolve():
            line = f.lineno
    if line is None and isinstance(e, SyntaxError):
        line = e.lineno
    where = f"{rel}:{line}" if line else str(rel)
    return f"{where}: {type(e).__name__}: {e}"


WARNINGS: List[str] = []


def warn(message: str) -> None:
    """Records what Larder does not act on; `larder apply`/`plan` print these."""
    if message not in WARNINGS:
        WARNINGS.append(message)


def load_objects(repo: Path) -> List[object]:
    """Imports every definition file and returns the definition objects found."""
    repo = repo.resolve()
    sys.path.insert(0, str(repo))
    found: List[object] = []
    seen = set()
    for i, path in enumerate(python_files(repo)):
        rel = path.relative_to(repo)
        mod_name = "_larder_repo_" + "_".join(rel.with_suffix("").parts)
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # report the file, line and error, not a bare traceback
            raise RepoError(_user_error(rel, path, e)) from e
        for value in vars(module).values():
            if isinstance(value, (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)) or feast_kind(value):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
                    for w in warnings_of(value):
                        warn(w)
            else:
                why = not_acted_on(value) or (f"Project {value.name!r}: the project comes from feature_store.yaml"
                                               if isinstance(value, Project) else None)
                if why and id(value) not in seen:
                    seen.add(id(value))
                    warn(f"{rel}: {why}")
    return found


def _add(kind: str, registry: Dict[str, Tuple[object, dict]], obj, errors: List[str], d: dict = None):
    d = obj.to_dict() if d is None else d
    name = d["name"]
    if name in registry:
        if registry[name][1] != d:
            errors.append(f"two different {kind} definitions are named {name!r}")
        return
    registry[name] = (obj, d)


def export(repo: Path) -> dict:
    """The registry document of a repo."""
    return export_objects(load_objects(repo))


def export_objects(objects: List[object]) -> dict:
    """The registry document holding ``objects`` (Larder's or Feast's definition objects) and
    what they reference (entities of views, batch sources of push sources...)."""
    entities, sources, views, odfvs, services, kept = {}, {}, {}, {}, {}, {}
    errors: List[str] = []

    def add_source(s: DataSource):
        _add("data source", sources, s, errors)
        if isinstance(s, (PushSource, KafkaSource)):
            add_source(s.batch_source)

    feast_registries = {"entity": entities, "data source": sources, "feature view": views,
                        "on-demand feature view": odfvs, "feature service": services, "feast object": kept}

    def add_feast(o):
        kind, d, nested = feast_to_dict(o)
        _add(kind, feast_registries[kind], o, errors, d)
        for n in nested:
            add_feast(n)

    for o in objects:
        if feast_kind(o):
            add_feast(o)
        elif isinstance(o, Entity):
            _add("entity", entities, o, errors)
        elif isinstance(o, DataSource):
            add_source(o)
        elif isinstance(o, FeatureView):
            _add("feature view", views, o, errors)
            add_source(o.source)
            for e in o.entities:
                if isinstance(e, Entity):
                    _add("entity", entities, e, errors)
        elif isinstance(o, OnDemandFeatureView):
            _add("on-demand feature view", odfvs, o, errors)
            for s in o.sources:
                if isinstance(s, DataSource):
                    add_source(s)
        elif isinstance(o, FeatureService):
            _add("feature service", services, o, errors)
    if errors:
        raise RepoError("; ".join(errors))

    def dicts(reg):
        return [d for _, (_, d) in sorted(reg.items())]

    return {
        "project": "",
        "entities": dicts(entities),
        "data_sources": dicts(sources),
        "feature_views": dicts(views),
        "on_demand_feature_views": dicts(odfvs),
        "feature_services": dicts(services),
        # Feast objects kept as Feast's protobuf (permissions), not acted on.
        "feast_objects": dicts(kept),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m larder.repo", description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="feature repo directory")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if not args.repo.is_dir():
        print(f"error: {args.repo} is not a directory", file=sys.stderr)
        return 2
    try:
        doc = export(args.repo)
    except RepoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for w in WARNINGS:
        print(f"warning: {w}", file=sys.stderr)
    text = json.dumps(doc, indent=2, sort_keys=False)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
