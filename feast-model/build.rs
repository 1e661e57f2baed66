//! Compiles Feast's protobuf schema from the descriptor set taken from the Feast 0.67 wheel
//! (`scripts/feast_descriptors.py`), so no `protoc` and no network are needed.

use prost::Message;

#[allow(clippy::disallowed_methods, reason = "a build script")]
fn main() -> std::io::Result<()> {
    let path = "feast-0.67.binpb";
    println!("cargo:rerun-if-changed={path}");
    let bytes = std::fs::read(path)?;
    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice()).map_err(std::io::Error::other)?;
    prost_build::Config::new().btree_map(["."]).compile_fds(fds)
}
