//! Feast's protobuf messages, one module per package (generated; see `build.rs`).

#![allow(missing_docs, clippy::all, clippy::clone_on_ref_ptr)]

/// `feast.core`: the registry and its objects.
pub mod core {
    include!(concat!(env!("OUT_DIR"), "/feast.core.rs"));
}

/// `feast.types`: feature values and entity keys.
pub mod types {
    include!(concat!(env!("OUT_DIR"), "/feast.types.rs"));
}

/// `feast.registry`: the messages of Feast's `RegistryServer` gRPC service.
pub mod registry {
    include!(concat!(env!("OUT_DIR"), "/feast.registry.rs"));
}

/// `feast.serving`: the feature server's messages.
pub mod serving {
    include!(concat!(env!("OUT_DIR"), "/feast.serving.rs"));
}

/// `feast.storage`: Feast's Redis key layout.
pub mod storage {
    include!(concat!(env!("OUT_DIR"), "/feast.storage.rs"));
}
