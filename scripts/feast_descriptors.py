"""Writes Feast's protobuf schema, as compiled into the Feast wheel, to a FileDescriptorSet.

    <feast venv>/bin/python scripts/feast_descriptors.py feast-proto/feast-0.67.binpb

Feast ships its .proto files only in its source repository; the wheel has the compiled
modules (`feast/protos/**/*_pb2.py`), each holding its file's serialized descriptor. This
collects every one of them with their imports (google/protobuf/*, in dependency order), so that
`larder-feast-proto` compiles exactly the schema of the Feast release installed, offline.
"""

import importlib
import pkgutil
import sys

import feast
import feast.protos
from google.protobuf import descriptor_pb2


def main(out: str) -> None:
    for mod in pkgutil.walk_packages(feast.protos.__path__, "feast.protos."):
        if mod.name.endswith("_pb2"):
            importlib.import_module(mod.name)
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    seen: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    order: list[str] = []

    def visit(fd) -> None:
        if fd.name in seen:
            return
        for dep in fd.dependencies:
            visit(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        seen[fd.name] = proto
        order.append(fd.name)

    for mod in list(sys.modules.values()):
        fd = getattr(mod, "DESCRIPTOR", None)
        if mod.__name__.startswith("feast.protos.") and fd is not None and hasattr(fd, "dependencies"):
            visit(pool.FindFileByName(fd.name))
    fds = descriptor_pb2.FileDescriptorSet(file=[seen[n] for n in order])
    with open(out, "wb") as f:
        f.write(fds.SerializeToString())
    print(f"feast {feast.__version__}: {len(order)} files -> {out}")
    for n in order:
        print(" ", n)


if __name__ == "__main__":
    main(sys.argv[1])
