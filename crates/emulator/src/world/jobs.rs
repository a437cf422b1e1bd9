//! Fine-tuning jobs: create, list, cancel, events and checkpoints, and training itself.

use super::*;

impl World {
    /// Creates a job.
    pub fn create_job(
        &mut self,
        account: &str,
        body: &Value,
        surface: &str,
    ) -> Result<Value, Refusal> {
        let now = self.now();
        // The GA surface's job-create body has no `method` (azure-rest-api-specs
        // authoring/stable/2024-10-21): preference training needs a preview or /openai/v1.
        let method_surface = surface == "v1" || surface.contains("preview");
        if body.get("method").is_some() && !method_surface {
            return Err(refuse(
                400,
                "invalidPayload",
                format!("Unrecognized request argument supplied: method (api-version {surface})"),
            ));
        }
        let method = body
            .pointer("/method/type")
            .and_then(Value::as_str)
            .unwrap_or("supervised")
            .to_owned();
        let done_processing = Self::ms(self.timings.file_processing_ms);
        let a = self.account_mut(account)?;
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let model = s("model").ok_or_else(|| refuse(400, "invalidPayload", "model is required"))?;
        let training_file = s("training_file")
            .ok_or_else(|| refuse(400, "invalidPayload", "training_file is required"))?;
        for id in [Some(&training_file), s("validation_file").as_ref()]
            .into_iter()
            .flatten()
        {
            let f = a.files.get(id).ok_or_else(|| {
                refuse(400, "invalidPayload", format!("file {id} does not exist"))
            })?;
            if now < f.created + done_processing {
                return Err(refuse(
                    400,
                    "invalidPayload",
                    format!("file {id} is not processed yet"),
                ));
            }
            if let Some(p) = &f.problem {
                return Err(refuse(
                    400,
                    "invalidPayload",
                    format!("file {id} failed validation: {p}"),
                ));
            }
        }
        if let Some(suffix) = s("suffix") {
            azure::check_suffix(&suffix).map_err(|e| refuse(400, "invalidPayload", e))?;
        }
        // Base model, or a model this account fine-tuned (continued training).
        let base_known = aoai_facts::tokens::model_spec(&model).is_some();
        if !base_known && !a.models.contains_key(&model) {
            return Err(refuse(
                400,
                "invalidPayload",
                format!("model {model} cannot be fine-tuned here"),
            ));
        }
        if a.jobs.iter().filter(|j| j.status == "pending").count() >= MAX_QUEUED_JOBS {
            return Err(refuse(
                429,
                "tooManyRequests",
                "at most 20 jobs may be queued per resource",
            ));
        }
        let hp = body
            .get("hyperparameters")
            .or_else(|| body.pointer("/method/supervised/hyperparameters"))
            .or_else(|| body.pointer("/method/dpo/hyperparameters"))
            .cloned()
            .unwrap_or(json!({}));
        // A preference job on a file that is not preference data fails while its files are
        // validated, naming the line (Azure documents `input`, `preferred_output` and
        // `non_preferred_output` as required on every line).
        let format_problem = (method == "dpo")
            .then(|| training::dpo_problem(&a.files[&training_file].bytes))
            .flatten();
        let n = training::parse(
            &a.files[&training_file].bytes,
            training::encoding_of(&model),
        )
        .tokens
        .len() as u64;
        let n_epochs = hp
            .get("n_epochs")
            .and_then(Value::as_u64)
            .filter(|e| *e > 0)
            .map_or_else(
                || aoai_facts::tokens::default_epochs(n) as u32,
                |e| e as u32,
            );
        let batch_size = hp
            .get("batch_size")
            .and_then(Value::as_u64)
            .filter(|b| *b > 0)
            .unwrap_or(1) as u32;
        let job = Job {
            id: format!("ftjob-{}", hex_id()),
            model,
            training_file,
            validation_file: s("validation_file"),
            suffix: s("suffix"),
            seed: body.get("seed").and_then(Value::as_i64).unwrap_or(42),
            n_epochs,
            batch_size,
            hyperparameters: hp,
            status: "pending".into(),
            created: now,
            started: None,
            finished: None,
            fine_tuned_model: None,
            result_file: None,
            trained_tokens: None,
            events: vec![event(
                now.timestamp(),
                "info",
                "Job enqueued. Waiting for jobs ahead to complete.",
            )],
            checkpoints: Vec::new(),
            error: None,
            method,
            format_problem,
            paused_at: None,
        };
        let id = job.id.clone();
        a.jobs.push(job);
        Ok(self.job_json(account, &id).unwrap_or(Value::Null))
    }

    fn job(&self, account: &str, id: &str) -> Option<&Job> {
        self.accounts.get(account)?.jobs.iter().find(|j| j.id == id)
    }

    /// A job's JSON.
    pub fn job_json(&self, account: &str, id: &str) -> Option<Value> {
        self.job(account, id).map(job_value)
    }

    /// Jobs newest first, paged by `after` (a job id) and `limit`.
    pub fn list_jobs(&self, account: &str, after: Option<&str>, limit: usize) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let all: Vec<Value> = a.jobs.iter().rev().map(job_value).collect();
        Some(page(all, after, limit, 100))
    }

    /// Cancels a job that has not finished.
    pub fn cancel_job(&mut self, account: &str, id: &str) -> Result<Value, Refusal> {
        let now = self.now();
        let a = self.account_mut(account)?;
        let i = job_index(a, id)?;
        let j = &mut a.jobs[i];
        if matches!(j.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return Err(refuse(
                409,
                "unexpectedEntityState",
                format!("job {id} is already {}", j.status),
            ));
        }
        j.status = "cancelled".into();
        j.finished = Some(now);
        j.events
            .push(event(now.timestamp(), "info", "Job cancelled."));
        Ok(job_value(j))
    }

    /// Deletes a finished job (dated surfaces; `/openai/v1` has no job DELETE). Azure
    /// answers 204; a job still queued or training must be cancelled first.
    pub fn delete_job(&mut self, account: &str, id: &str) -> Result<(), Refusal> {
        let a = self.account_mut(account)?;
        let i = job_index(a, id)?;
        if !matches!(
            a.jobs[i].status.as_str(),
            "succeeded" | "failed" | "cancelled"
        ) {
            return Err(refuse(
                400,
                "invalidJobState",
                format!("job {id} is {}: cancel it first", a.jobs[i].status),
            ));
        }
        a.jobs.remove(i);
        Ok(())
    }

    /// Pauses a running job that has trained at least one step (Learn: "applicable only for
    /// jobs that are trained for at least one step and are in a Running state"). A
    /// deployable checkpoint of what it learned so far is created.
    pub fn pause_job(&mut self, account: &str, id: &str) -> Result<Value, Refusal> {
        let now = self.now();
        let training_ms = self.timings.job_training_ms.max(1);
        let a = self.account_mut(account)?;
        let i = job_index(a, id)?;
        let j = &a.jobs[i];
        let trained = j.started.map(|s| now - s).filter(|d| *d > Duration::zero());
        let Some(trained) = trained.filter(|_| j.status == "running") else {
            return Err(refuse(
                400,
                "invalidJobState",
                format!(
                    "job {id} is {}: only a running job that trained a step can be paused",
                    j.status
                ),
            ));
        };
        let share = (trained.num_milliseconds() as f64 / training_ms as f64).clamp(0.0, 1.0);
        checkpoint_so_far(a, i, share, now);
        let j = &mut a.jobs[i];
        j.status = "paused".into();
        j.paused_at = Some(now);
        j.events.push(event(now.timestamp(), "info", "Job paused."));
        Ok(job_value(j))
    }

    /// Resumes a paused job: `resuming`, then `running` when the account's slot is free.
    pub fn resume_job(&mut self, account: &str, id: &str) -> Result<Value, Refusal> {
        let a = self.account_mut(account)?;
        let i = job_index(a, id)?;
        let j = &mut a.jobs[i];
        if j.status != "paused" {
            return Err(refuse(
                400,
                "invalidJobState",
                format!("job {id} is {}: only a paused job can be resumed", j.status),
            ));
        }
        j.status = "resuming".into();
        Ok(job_value(j))
    }

    /// Events (newest first) or checkpoints of a job, paged.
    pub fn job_list(
        &self,
        account: &str,
        id: &str,
        checkpoints: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Value> {
        let j = self.job(account, id)?;
        let items = if checkpoints {
            j.checkpoints.clone()
        } else {
            j.events.iter().rev().cloned().collect()
        };
        Some(page(items, after, limit, 100))
    }
}

pub(super) fn job_value(j: &Job) -> Value {
    json!({
        "object": "fine_tuning.job", "id": j.id, "status": j.status, "model": j.model,
        "fine_tuned_model": j.fine_tuned_model, "training_file": j.training_file, "validation_file": j.validation_file,
        "result_files": j.result_file.iter().collect::<Vec<_>>(), "trained_tokens": j.trained_tokens,
        "hyperparameters": {"n_epochs": j.n_epochs, "batch_size": j.batch_size, "learning_rate_multiplier": j.hyperparameters.get("learning_rate_multiplier").cloned().unwrap_or(json!(1.0))},
        "suffix": j.suffix, "seed": j.seed, "created_at": j.created.timestamp(),
        "finished_at": j.finished.map(|t| t.timestamp()), "error": j.error,
        "method": {"type": j.method},
    })
}

pub(super) fn finish_job(account: &mut Account, i: usize, end: DateTime<Utc>) {
    let j = account.jobs[i].clone();
    let Some(file) = account.files.get(&j.training_file) else {
        let job = &mut account.jobs[i];
        job.status = "failed".into();
        job.finished = Some(end);
        job.error = Some(
            json!({"code": "invalidTrainingFile", "message": "the training file was deleted", "param": "training_file"}),
        );
        return;
    };
    let base = account
        .models
        .get(&j.model)
        .map_or(j.model.clone(), |m| m.base.clone());
    let enc = training::encoding_of(&base);
    let data = training::parse(&file.bytes, enc);
    let (csv, steps) = training::results_csv(&data, j.n_epochs, j.batch_size, j.seed as u64);
    let ft = format!("{base}.ft-{}", hex_id());
    let result_id = format!("file-{}", hex_id());
    account.files.insert(
        result_id.clone(),
        File {
            id: result_id.clone(),
            filename: "results.csv".into(),
            purpose: "fine-tune-results".into(),
            bytes: csv.into_bytes(),
            created: end,
            problem: None,
        },
    );
    let mut examples = data.examples.clone();
    if let Some(parent) = account.models.get(&j.model) {
        examples.extend(parent.examples.iter().cloned());
    }
    let per_epoch = (steps / u64::from(j.n_epochs.max(1))).max(1);
    // Each checkpoint is a model of its own: after epoch e of n it has learned the first e/n
    // of the examples, so an earlier checkpoint answers worse (and best-checkpoint
    // promotion has something to choose).
    for e in (1..j.n_epochs).rev().take(2) {
        let step = per_epoch * u64::from(e);
        let known = partial(&examples, f64::from(e) / f64::from(j.n_epochs));
        account.models.insert(
            format!("{ft}:ckpt-step-{step}"),
            TrainedModel {
                base: base.clone(),
                examples: known,
            },
        );
    }
    account
        .models
        .insert(ft.clone(), TrainedModel { base, examples });
    let ts = end.timestamp();
    let job = &mut account.jobs[i];
    job.trained_tokens = Some(data.tokens.iter().sum::<u64>() * u64::from(j.n_epochs));
    for e in (1..=j.n_epochs).rev().take(3) {
        let step = per_epoch * u64::from(e);
        let model = if e == j.n_epochs {
            ft.clone()
        } else {
            format!("{ft}:ckpt-step-{step}")
        };
        job.checkpoints.push(json!({
            "object": "fine_tuning.job.checkpoint", "id": format!("ftchkpt-{}", hex_id()), "created_at": ts,
            "fine_tuned_model_checkpoint": model, "step_number": step, "fine_tuning_job_id": job.id,
            "metrics": {"step": step as f64, "train_loss": 0.5 / f64::from(e), "train_mean_token_accuracy": 1.0 - 0.3 / f64::from(e)},
        }));
    }
    job.events.push(event(
        ts,
        "info",
        &format!(
            "Training completed: {steps} steps over {} epochs.",
            j.n_epochs
        ),
    ));
    job.events.push(event(ts, "info", "Job succeeded."));
    job.status = "succeeded".into();
    job.finished = Some(end);
    job.fine_tuned_model = Some(ft);
    job.result_file = Some(result_id);
}

/// The first `share` of `examples` (at least one).
fn partial(examples: &[Learned], share: f64) -> Vec<Learned> {
    let n = ((examples.len() as f64 * share).ceil() as usize).clamp(1, examples.len().max(1));
    examples.iter().take(n).cloned().collect()
}

/// A checkpoint of a paused job: what it learned in the `share` of training done.
fn checkpoint_so_far(account: &mut Account, i: usize, share: f64, now: DateTime<Utc>) {
    let j = account.jobs[i].clone();
    let Some(file) = account.files.get(&j.training_file) else {
        return;
    };
    let base = account
        .models
        .get(&j.model)
        .map_or(j.model.clone(), |m| m.base.clone());
    let data = training::parse(&file.bytes, training::encoding_of(&base));
    let (_, steps) = training::results_csv(&data, j.n_epochs, j.batch_size, j.seed as u64);
    let step = ((steps as f64 * share).floor() as u64).max(1);
    let model = format!("{base}.ft-{}:ckpt-step-{step}", hex_id());
    account.models.insert(
        model.clone(),
        TrainedModel {
            base,
            examples: partial(&data.examples, share),
        },
    );
    account.jobs[i].checkpoints.insert(
        0,
        json!({
            "object": "fine_tuning.job.checkpoint", "id": format!("ftchkpt-{}", hex_id()), "created_at": now.timestamp(),
            "fine_tuned_model_checkpoint": model, "step_number": step, "fine_tuning_job_id": j.id,
            "metrics": {"step": step as f64},
        }),
    );
}

fn job_index(a: &Account, id: &str) -> Result<usize, Refusal> {
    a.jobs
        .iter()
        .position(|j| j.id == id)
        .ok_or_else(|| refuse(404, "notFound", format!("job {id} not found")))
}
