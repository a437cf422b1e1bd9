//! Chat completions, whole or streamed as server-sent events.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::{Q, surface_of};
use crate::world::Refusal;
use crate::{Emulator, error, refusal};

/// `stream` and `stream_options.include_usage` of a request.
fn streaming(body: &Value) -> Option<bool> {
    (body.get("stream") == Some(&Value::Bool(true)))
        .then(|| body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)))
}

pub(crate) fn chat_response(
    r: Result<Value, (Refusal, Option<u64>)>,
    stream: Option<bool>,
) -> Response {
    match r {
        Ok(v) => match stream {
            Some(include_usage) => sse(&v, include_usage),
            None => Json(v).into_response(),
        },
        Err((refusal_, wait)) => {
            let mut resp = refusal(refusal_);
            if let Some(ms) = wait {
                resp.headers_mut().insert(
                    "retry-after-ms",
                    ms.to_string().parse().expect("number header"),
                );
                resp.headers_mut().insert(
                    "retry-after",
                    ms.div_ceil(1000)
                        .to_string()
                        .parse()
                        .expect("number header"),
                );
            }
            resp
        }
    }
}

pub(crate) async fn chat_dated(
    State(emu): State<Emulator>,
    Path((account, dep)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let surface = surface_of(&uri, &q);
    chat_response(
        emu.with(|w| w.chat(&account, &dep, &body, &surface)),
        streaming(&body),
    )
}

pub(crate) async fn chat_v1(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(dep) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(
            400,
            "invalid_request_error",
            "model (the deployment name) is required",
        );
    };
    chat_response(
        emu.with(|w| w.chat(&account, &dep, &body, "v1")),
        streaming(&body),
    )
}

/// A completion as server-sent events, the way Azure streams it: a prompt-annotation frame
/// (empty `choices`), the role, the content word by word, the finish reason, the usage
/// chunk when asked (`stream_options.include_usage`), then `data: [DONE]`.
fn sse(v: &Value, include_usage: bool) -> Response {
    let (id, created, model) = (&v["id"], &v["created"], &v["model"]);
    let choice = &v["choices"][0];
    let content = choice["message"]["content"].as_str().unwrap_or_default();
    let usage = |u: Value| if include_usage { u } else { Value::Null };
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": null, "usage": usage(Value::Null),
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null,
                            "content_filter_results": {}}]})
    };
    let mut frames = vec![
        json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    ];
    frames.extend(
        content
            .split_inclusive(' ')
            .map(|w| chunk(json!({"content": w}), Value::Null)),
    );
    frames.push(chunk(json!({}), choice["finish_reason"].clone()));
    if include_usage {
        frames.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": v["usage"]}),
        );
    }
    let mut body: String = frames.iter().map(|f| format!("data: {f}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response()
}
