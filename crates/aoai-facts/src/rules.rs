//! Small published rules both sides apply the same way.

use serde_json::Value;

/// A job suffix: 1 to 40 characters of `a-z A-Z 0-9 - _` (the fine-tuning job spec).
pub fn check_suffix(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 40 {
        return Err("a suffix is 1 to 40 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("a suffix uses only a-z, A-Z, 0-9, - and _");
    }
    Ok(())
}

/// Reasoning models (o1, o3, o4 families): `max_completion_tokens`, not `max_tokens`, and
/// dated api-versions from `2024-12-01-preview`.
pub fn is_reasoning_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4")
}

/// The tenant (`tid` claim) of an Entra-shaped JWT; `None` for an opaque token.
pub fn token_tenant(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("tid")?.as_str().map(str::to_owned)
}
