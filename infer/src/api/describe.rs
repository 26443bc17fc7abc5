//! POST /v1/images/describe (ours: OpenAI's image input goes through chat completions, which
//! this engine does not serve): a multipart/form-data upload as for transcriptions, the
//! picture as `file` (PNG or JPEG), optionally `prompt` (the question; "Describe this image."
//! when left out), `model` (the first image description model when left out: none is pinned,
//! so it comes from a model pack) and `max_tokens`; answers {"text": ...} with the model and
//! the token counts.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use super::{ApiResponse, check_capability, engine_error, internal, invalid, ok};
use crate::engine::{Capability, Engine};
use crate::vision::MAX_ANSWER_TOKENS;

/// An answer's length when the form does not say.
const DEFAULT_MAX_TOKENS: usize = 128;

struct DescribeForm {
    file: Bytes,
    model: Option<String>,
    prompt: Option<String>,
    max_tokens: usize,
}

pub(super) async fn describe(
    engine: Arc<Engine>,
    content_type: Option<String>,
    body: Bytes,
) -> ApiResponse {
    let form = match read_form(content_type.as_deref(), body).await {
        Ok(form) => form,
        Err(message) => return invalid(message),
    };
    let model = match form.model.clone() {
        Some(model) => model,
        None => match engine
            .status()
            .into_iter()
            .find(|status| status.capability == Capability::ImageDescription)
        {
            Some(status) => status.id,
            None => {
                return super::error(
                    hyper::StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    "this box has no image description model; add a model pack with capability \
                     image_description (carapace models add)"
                        .into(),
                );
            }
        },
    };
    if let Some(response) = check_capability(&engine, &model, Capability::ImageDescription) {
        return response;
    }
    let id = model.clone();
    let computed = tokio::task::spawn_blocking(move || {
        engine.describe_image(&id, &form.file, form.prompt.as_deref(), form.max_tokens)
    })
    .await;
    let answer = match computed {
        Ok(Ok(answer)) => answer,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    ok(json!({
        "text": answer.text,
        "model": model,
        "finish_reason": if answer.finished { "stop" } else { "length" },
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.tokens.len(),
            "total_tokens": answer.prompt_tokens + answer.tokens.len(),
        },
    }))
}

async fn read_form(content_type: Option<&str>, body: Bytes) -> Result<DescribeForm, String> {
    let boundary = content_type
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or_else(|| {
            "send the picture as multipart/form-data with a `file` part (PNG or JPEG) and \
             optionally `prompt`, `model` and `max_tokens`"
                .to_string()
        })?;
    let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(body, boundary);
    let mut file = None;
    let mut model = None;
    let mut prompt = None;
    let mut max_tokens = DEFAULT_MAX_TOKENS;
    let unreadable =
        |e: multer::Error| format!("the form does not parse ({e}); send multipart/form-data");
    while let Some(part) = parts.next_field().await.map_err(unreadable)? {
        let name = part.name().unwrap_or_default().to_string();
        let bytes = part.bytes().await.map_err(unreadable)?;
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map(|text| text.trim().to_string())
                .map_err(|_| format!("`{name}` is not UTF-8 text"))
        };
        match name.as_str() {
            "file" => file = Some(bytes.clone()),
            "model" => model = Some(text()?).filter(|m| !m.is_empty()),
            "prompt" => prompt = Some(text()?).filter(|p| !p.is_empty()),
            "max_tokens" => {
                let value = text()?;
                max_tokens = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ANSWER_TOKENS).contains(n))
                    .ok_or_else(|| {
                        format!("`max_tokens` {value:?} is not a whole number from 1 to {MAX_ANSWER_TOKENS}")
                    })?;
            }
            other => {
                return Err(format!(
                    "`{other}` is not taken here; send file, and optionally prompt, model, max_tokens"
                ));
            }
        }
    }
    Ok(DescribeForm {
        file: file
            .ok_or("the form has no `file` part; send the picture (PNG or JPEG) as `file`")?,
        model,
        prompt,
        max_tokens,
    })
}
