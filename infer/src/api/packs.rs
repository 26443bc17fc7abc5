//! The owner's model packs (ours; OpenAI has no such endpoint). `POST /v1/packs` takes a pack
//! as a tar (`carapace models add --tar`), read as it streams in rather than held in memory
//! (packs run to gigabytes, past the other endpoints' body limit), and answers 201 with what
//! was added; `DELETE /v1/packs/{id}` removes a pack the owner added. Only a pack signed with
//! the image's update keys is taken, so any program on the box may offer one.

use std::sync::Arc;

use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::json;

use super::{ApiResponse, engine_error, error, internal, invalid, ok, respond};
use crate::engine::Engine;
use crate::error::Error;

/// Adds the pack whose tar is the request's `body`.
pub(crate) async fn add_pack(engine: Arc<Engine>, body: hyper::body::Incoming) -> ApiResponse {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let added = tokio::task::spawn_blocking(move || {
        engine.add_pack_tar(tokio_util::io::SyncIoBridge::new(reader))
    })
    .await;
    match added {
        Ok(Ok(added)) => {
            println!(
                "carapace-infer: added model pack {} {} ({}, signed by key {}){}",
                added.id,
                added.version,
                added.capability.name(),
                added.signed_by,
                match &added.replaced {
                    Some(old) => format!(" in place of {old}"),
                    None => String::new(),
                }
            );
            respond(
                StatusCode::CREATED,
                &json!({
                    "object": "model_pack",
                    "id": added.id,
                    "version": added.version,
                    "capability": added.capability,
                    "signed_by": added.signed_by.to_string(),
                    "replaced": added.replaced,
                }),
            )
        }
        Ok(Err(failure)) => {
            eprintln!("carapace-infer: a model pack was not added: {failure}");
            pack_error(&failure)
        }
        Err(join) => internal(format!("adding the pack stopped: {join}")),
    }
}

/// Removes the added pack `id`.
pub(super) async fn remove_pack(engine: Arc<Engine>, id: &str) -> ApiResponse {
    let id = id.to_string();
    let removed = tokio::task::spawn_blocking({
        let id = id.clone();
        move || engine.remove_added_pack(&id)
    })
    .await;
    match removed {
        Ok(Ok(version)) => {
            println!("carapace-infer: removed model pack {id} {version}");
            ok(json!({
            "object": "model_pack",
            "id": id,
            "version": version,
            "deleted": true,
            }))
        }
        Ok(Err(failure)) => pack_error(&failure),
        Err(join) => internal(format!("removing the pack stopped: {join}")),
    }
}

fn pack_error(failure: &Error) -> ApiResponse {
    match failure {
        Error::Models(carapace_models::Error::PackNoRoom { .. }) => error(
            StatusCode::INSUFFICIENT_STORAGE,
            "invalid_request_error",
            "no_room",
            failure.to_string(),
        ),
        Error::Models(carapace_models::Error::Pack { .. })
        | Error::PackRefused { .. }
        | Error::PackUpload { .. } => invalid(failure.to_string()),
        Error::NotRemovable { .. } => error(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "model_not_removable",
            failure.to_string(),
        ),
        Error::NoPackStore => error(
            StatusCode::NOT_IMPLEMENTED,
            "server_error",
            "no_pack_store",
            failure.to_string(),
        ),
        _ => engine_error(failure),
    }
}
