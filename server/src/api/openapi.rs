//! The OpenAPI document (served at `/openapi.json`, browsable at `/docs`).

use utoipa::OpenApi;

/// Larder's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Larder feature server",
        description = "Feast-compatible feature server API."
    ),
    tags(
        (name = "online", description = "Online feature values (Feast's feature server)"),
        (name = "offline", description = "Point-in-time-correct training sets"),
        (name = "ingest", description = "Writes: push and write-to-online-store"),
        (name = "materialization", description = "Batch materialization jobs"),
        (name = "registry", description = "Definitions: apply, plan, history, teardown, freshness"),
        (name = "operations", description = "Health")
    ),
    paths(
        super::online::get_online_features,
        super::historical::get_historical_features,
        super::registry::registry,
        super::registry::history,
        super::registry::freshness,
        super::push::push,
        super::push::write_to_online_store,
        super::admin::materialize,
        super::admin::materialize_incremental,
        super::admin::job,
        super::admin::apply,
        super::admin::plan,
        super::admin::teardown,
        super::health::health
    ),
    components(schemas(
        larder_protocol::requests::GetOnlineFeaturesRequest,
        super::online::GetOnlineFeaturesResponse,
        larder_protocol::requests::PushRequest,
        larder_protocol::requests::WriteToOnlineStoreRequest,
        larder_protocol::requests::MaterializeRequest,
        larder_protocol::requests::MaterializeIncrementalRequest,
        larder_protocol::requests::ApplyRequest
    ))
)]
pub struct ApiDoc;
