//! The Models API: base models with their capabilities and retirement dates, and the
//! account's fine-tuned models. Dated surfaces answer Azure's shape (`capabilities`,
//! `lifecycle_status`, `deprecation`); `/openai/v1` answers OpenAI's (`created`, `owned_by`).

use super::*;

/// Retirement dates (unix seconds) set through the control API, by model id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    /// When fine-tuning of the model stops.
    pub fine_tune: Option<i64>,
    /// When inference stops.
    pub inference: Option<i64>,
}

impl World {
    /// Every model of an account, in the shape of `surface`.
    pub fn models_json(&self, account: &str, surface: &str) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let mut ids: Vec<String> = azure::BASE_MODELS
            .iter()
            .map(|(id, ..)| (*id).to_owned())
            .collect();
        let mut tuned: Vec<&String> = a.models.keys().filter(|m| !m.contains(":ckpt-")).collect();
        tuned.sort();
        ids.extend(tuned.into_iter().cloned());
        let data: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.model_json(account, id, surface))
            .collect();
        Some(json!({"object": "list", "data": data}))
    }

    /// One model, in the shape of `surface`; `None` when the account does not know it.
    pub fn model_json(&self, account: &str, id: &str, surface: &str) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let set = self.retirements.get(id).copied().unwrap_or_default();
        let (created, base_of, job, fine_tunable) =
            if let Some((_, date, ft)) = azure::BASE_MODELS.iter().find(|(m, ..)| *m == id) {
                let created = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .ok()?
                    .and_hms_opt(0, 0, 0)?
                    .and_utc();
                (created, None, None, *ft)
            } else {
                let trained = a.models.get(id)?;
                let job = a
                    .jobs
                    .iter()
                    .find(|j| j.fine_tuned_model.as_deref() == Some(id));
                let created = job.and_then(|j| j.finished).unwrap_or_else(|| self.now());
                (
                    created,
                    Some(trained.base.clone()),
                    job.map(|j| j.id.clone()),
                    true,
                )
            };
        if surface == "v1" {
            let owner = if base_of.is_some() {
                "organization-owner"
            } else {
                "system"
            };
            return Some(
                json!({"id": id, "object": "model", "created": created.timestamp(), "owned_by": owner}),
            );
        }
        let years = |n: i32| {
            created
                .with_year(created.year() + n)
                .unwrap_or(created)
                .timestamp()
        };
        let fine_tune_retires = set.fine_tune.unwrap_or_else(|| years(3));
        let inference_retires = set.inference.unwrap_or_else(|| years(4));
        let now = self.now().timestamp();
        let lifecycle = if inference_retires <= now {
            "deprecated"
        } else if fine_tune_retires <= now {
            "deprecating"
        } else {
            "generally-available"
        };
        // Spec: `deprecation.fine_tune` "will be null for fine tune models".
        let deprecation = if base_of.is_some() {
            json!({"inference": inference_retires})
        } else {
            json!({"fine_tune": fine_tune_retires, "inference": inference_retires})
        };
        Some(json!({
            "id": id, "object": "model", "created_at": created.timestamp(), "status": "succeeded",
            "model": base_of, "fine_tune": job,
            "capabilities": {"fine_tune": fine_tunable, "inference": true, "completion": false,
                             "chat_completion": true, "embeddings": false},
            "lifecycle_status": lifecycle,
            "deprecation": deprecation,
        }))
    }

    /// Sets a model's retirement dates (control API).
    pub fn set_retirement(&mut self, id: &str, r: Retirement) {
        self.retirements.insert(id.to_owned(), r);
    }
}
