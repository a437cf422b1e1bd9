//! Chat completions on a deployment: rate limits, reasoning-model rules, answers.

use super::*;

impl World {
    /// Answers a chat completion on a deployment, enforcing rate limits. `Ok` carries the
    /// response body; `Err` a refusal (404, 400, or 429 with the wait in `message`).
    pub fn chat(
        &mut self,
        account: &str,
        deployment: &str,
        body: &Value,
        surface: &str,
    ) -> Result<Value, (Refusal, Option<u64>)> {
        let now = self.now();
        let a = self.account_mut(account).map_err(|r| (r, None))?;
        let d = a
            .deployments
            .get(deployment)
            .filter(|d| d.state(now) == "Succeeded")
            .cloned()
            .ok_or_else(|| {
                (
                    refuse(
                        404,
                        "DeploymentNotFound",
                        format!("the API deployment {deployment} does not exist"),
                    ),
                    None,
                )
            })?;
        let o_series = azure::is_reasoning_model(&d.serves);
        // Reasoning models answer only on api-version 2024-12-01-preview and later (Learn:
        // "reasoning models" API support); /openai/v1 always serves them.
        if o_series && surface != "v1" && surface < azure::O_SERIES_MIN_API_VERSION {
            return Err((
                refuse(
                    400,
                    "BadRequest",
                    format!(
                        "Model {} is enabled only for api versions {} and later",
                        d.serves,
                        azure::O_SERIES_MIN_API_VERSION
                    ),
                ),
                None,
            ));
        }
        if o_series && body.get("max_tokens").is_some() {
            return Err((
                refuse(
                    400,
                    "unsupported_parameter",
                    "max_tokens is not supported with this model; use max_completion_tokens",
                ),
                None,
            ));
        }
        let messages: Vec<serde_json::Map<String, Value>> = body
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|x| x.as_object().cloned()).collect())
            .unwrap_or_default();
        if messages.is_empty() {
            return Err((
                refuse(400, "invalid_request_error", "messages is required"),
                None,
            ));
        }
        let base = d
            .serves
            .split(".ft-")
            .next()
            .unwrap_or(&d.serves)
            .to_owned();
        let enc: Encoding = training::encoding_of(&base);
        let prompt_tokens = aoai_facts::tokens::conversation_tokens(enc, messages.iter());
        let max = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64);
        let estimate = prompt_tokens + max.unwrap_or(16);
        // Rate limits from capacity: 1 unit = 6 RPM and 1,000 TPM over a minute, and — as
        // Azure judges requests "over a small period of time, typically 1 or 10 seconds" —
        // no more than a tenth of a minute's requests in any 10 seconds.
        let dep = a
            .deployments
            .get_mut(deployment)
            .expect("deployment exists");
        while dep
            .window
            .front()
            .is_some_and(|(t, _)| now - *t >= Duration::seconds(60))
        {
            dep.window.pop_front();
        }
        let used: u64 = dep.window.iter().map(|(_, n)| n).sum();
        let short = Duration::seconds(10);
        let recent: Vec<DateTime<Utc>> = dep
            .window
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| now - *t < short)
            .collect();
        let per_short = u64::from(dep.capacity.max(1));
        let wait_until = if recent.len() as u64 >= per_short {
            Some(recent[0] + short)
        } else if dep.window.len() as u64 >= u64::from(dep.capacity) * 6
            || used + estimate > u64::from(dep.capacity) * 1000
        {
            Some(dep.window.front().map_or(now, |(t, _)| *t) + Duration::seconds(60))
        } else {
            None
        };
        if let Some(until) = wait_until {
            let wait = (until - now).num_milliseconds().max(1) as u64;
            return Err((
                refuse(
                    429,
                    "429",
                    format!(
                        "Requests to the deployment have exceeded the rate limit of your current pricing tier. Please retry after {} seconds.",
                        wait.div_ceil(1000)
                    ),
                ),
                Some(wait),
            ));
        }
        dep.window.push_back((now, estimate));
        dep.last_used = Some(now);
        let prompt = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .filter_map(|m| m.get("content").and_then(Value::as_str))
            .next_back()
            .unwrap_or_default();
        let answer = if d.is_fine_tuned() {
            let owner = self
                .accounts
                .values()
                .find(|a| a.models.contains_key(&d.serves));
            owner.and_then(|o| {
                training::nearest_answer(&o.models[&d.serves].examples, prompt).map(str::to_owned)
            })
        } else {
            None
        }
        .unwrap_or_else(|| "I'm sorry, I don't have specific information about that.".to_owned());
        let full = enc.count(&answer);
        let (content, completion_tokens, finish) = match max {
            Some(m) if full > m => {
                let words: Vec<&str> = answer.split_inclusive(' ').collect();
                let mut cut = String::new();
                for w in words {
                    if enc.count(&(cut.clone() + w)) > m {
                        break;
                    }
                    cut.push_str(w);
                }
                let n = enc.count(&cut);
                (cut, n, "length")
            }
            _ => (answer, full, "stop"),
        };
        Ok(json!({
            "id": format!("chatcmpl-{}", hex_id()),
            "object": "chat.completion",
            "created": now.timestamp(),
            "model": base,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }))
    }
}
