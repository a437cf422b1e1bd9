use super::*;

fn suffix_for(run: &Run) -> String {
    // Azure: at most 40 characters of a-z A-Z 0-9 - _. A digest of the whole run id keeps
    // it unique when the id is cut (the id's own digest is the data's, shared by runs).
    let digest = &sha256_hex(run.id.as_bytes())[..8];
    let head: String = run.id.chars().take(40 - digest.len() - 1).collect();
    let head = head.trim_end_matches('-');
    format!("{head}-{digest}")
}

/// The name a run's file has on the Hub: unique to the run (its job suffix), so an upload
/// whose answer was lost, or a dead holder's, is found by name instead of sent twice.
fn hub_filename(run: &Run, name: &str) -> String {
    format!("{}-{name}", suffix_for(run))
}

/// The suffix earlier versions gave a run's job (cut id and the data digest), still looked
/// for when a job step is taken over, so an upgrade never creates a second job.
fn legacy_suffix(run: &Run) -> String {
    let digest = run.id.rsplit('-').next().unwrap_or("");
    let head: String = run.id.chars().take(40 - digest.len() - 1).collect();
    format!("{}-{digest}", head.trim_end_matches('-'))
}

impl Pipeline {
    /// Uploads the files, waits for processing, creates the job. Resumable at every step.
    ///
    /// # Errors
    /// Retryable Azure or storage failures; refused when the Hub rejects the data.
    pub async fn submit_to_hub(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        if run.stage != Stage::Uploading {
            return Ok(Emitted::default());
        }
        let datasets = self.datasets(&run.manifest).await?;
        let datasets = datasets.as_ref();
        let mut file_ids = BTreeMap::new();
        for f in &run.files {
            let step = format!("upload:{}", f.name);
            let filename = hub_filename(&run, &f.name);
            let filename = &filename;
            let uploaded = self
                .effect(
                    id,
                    &step,
                    |took_over| async move {
                        // A dead holder may have uploaded before recording it: look first.
                        if took_over && let Some(obj) = self.hub.find_file(filename).await? {
                            return Ok(obj.id);
                        }
                        let obj = self
                            .hub
                            .upload_file(filename, datasets, DATASETS_CONTAINER, &f.blob)
                            .await?;
                        Ok(obj.id)
                    },
                    |r, fid| {
                        r.hub_files.insert(f.name.clone(), fid.to_owned());
                    },
                )
                .await;
            let fid = match uploaded {
                Err(PipelineError::Aoai(e)) if queue::hub_full(&e) => {
                    return self.requeue(id, &e).await;
                }
                other => other?,
            };
            file_ids.insert(f.name.clone(), fid);
        }
        // Wait a little for processing; TrainingMonitor continues if it takes longer.
        let deadline = tokio::time::Instant::now() + self.file_wait;
        for fid in file_ids.values() {
            loop {
                let f = self.hub.get_file(fid).await?;
                if f.is_ready() {
                    break;
                }
                if f.is_failed() {
                    let detail = f.status_details.unwrap_or_else(|| f.status.clone());
                    runs::update(self.store.as_ref(), id, |r| {
                        r.transition(
                            Stage::Rejected,
                            ACTOR_PIPELINE,
                            format!("the Hub refused {fid}: {detail}"),
                            self.now(),
                        );
                        Ok::<(), PipelineError>(())
                    })
                    .await?;
                    self.job_ended(&run, &[]).await?;
                    return Ok(Emitted::notify(Notification::RunRejected {
                        run_id: id.to_owned(),
                        project: run.project.clone(),
                        reasons: vec![detail],
                        report: None,
                    }));
                }
                if tokio::time::Instant::now() > deadline {
                    return Ok(Emitted::default());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let m = &run.manifest;
        let job_req = CreateJob {
            model: run.base_model.clone(),
            training_file: file_ids[&m.training_file].clone(),
            validation_file: m
                .validation_file
                .as_ref()
                .and_then(|v| file_ids.get(v).cloned()),
            suffix: Some(suffix_for(&run)),
            seed: m.seed,
            hyperparameters: m.hyperparameters.clone(),
            method: m.method,
        };
        let now = self.now();
        let legacy = legacy_suffix(&run);
        let legacy = &legacy;
        let created = self
            .effect(
                id,
                "create_job",
                |took_over| async move {
                    // A dead holder may have created the job before recording it: look first.
                    if took_over
                        && let Some(j) =
                            self.hub
                                .list_jobs(None, 100)
                                .await?
                                .data
                                .into_iter()
                                .find(|j| {
                                    j.suffix.as_deref() == job_req.suffix.as_deref()
                                        || j.suffix.as_deref() == Some(legacy.as_str())
                                })
                    {
                        return Ok(j.id);
                    }
                    let job = self.hub.create_job(&job_req).await.map_err(|e| match e {
                        e if queue::hub_full(&e) => PipelineError::Aoai(e),
                        AoaiError::Http {
                            status: 400,
                            message,
                            ..
                        } => refused("training_refused", message),
                        other => other.into(),
                    })?;
                    Ok(job.id)
                },
                |r, job_id| {
                    r.job_id = Some(job_id.to_owned());
                    if r.stage == Stage::Uploading {
                        r.transition(
                            Stage::Training,
                            ACTOR_PIPELINE,
                            format!("fine-tuning job {job_id} created"),
                            now,
                        );
                    }
                },
            )
            .await;
        let job_id = match created {
            Err(PipelineError::Aoai(e)) if queue::hub_full(&e) => {
                return self.requeue(id, &e).await;
            }
            other => other?,
        };
        Ok(Emitted::notify(Notification::TrainingSubmitted {
            run_id: id.to_owned(),
            project: run.project.clone(),
            job_id,
        }))
    }

    /// Advances every run that waits on the Hub: uploads still processing, and jobs.
    ///
    /// # Errors
    pub(super) async fn check_job(&self, run: &Run) -> Result<Emitted, PipelineError> {
        let Some(job_id) = &run.job_id else {
            return Ok(Emitted::default());
        };
        let job = self.hub.get_job(job_id).await?;
        let phase = job.phase();
        if !phase.is_terminal() {
            let stuck = (self.now() - run.updated_at)
                > chrono::Duration::hours(self.topology.defaults.training_deadline_hours);
            runs::update(self.store.as_ref(), &run.id, |r| {
                if r.job_status.as_deref() != Some(job.status.as_str()) {
                    r.note(
                        ACTOR_PIPELINE,
                        Event::JobStatus,
                        job.status.clone(),
                        self.now(),
                    );
                    r.job_status = Some(job.status.clone());
                }
                let flag = format!("job {job_id} is past the training deadline");
                if stuck && !r.flags.contains(&flag) {
                    r.flags.push(flag);
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
            return Ok(Emitted::default());
        }
        if phase != JobPhase::Succeeded {
            let detail = job
                .error
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| job.status.clone());
            runs::update(self.store.as_ref(), &run.id, |r| {
                if r.stage == Stage::Training {
                    r.job_status = Some(job.status.clone());
                    r.transition(
                        Stage::TrainingFailed,
                        ACTOR_PIPELINE,
                        detail.clone(),
                        self.now(),
                    );
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
            self.job_ended(run, &job.result_files).await?;
            return Ok(Emitted::notify(Notification::TrainingFailed {
                run_id: run.id.clone(),
                project: run.project.clone(),
                detail,
            }));
        }
        let mut metrics = TrainingMetrics::default();
        if let Some(result) = job.result_files.first() {
            let csv = self.hub.file_content(result).await?;
            self.put_report(&run.id, "results.csv", &csv).await?;
            if let Ok(rows) = parse_results_csv(&String::from_utf8_lossy(&csv)) {
                metrics.steps = rows.len() as u64;
                metrics.first_train_loss = rows.first().and_then(|r| r.train_loss);
                metrics.final_train_loss = rows.last().and_then(|r| r.train_loss);
                metrics.final_train_accuracy =
                    rows.last().and_then(|r| r.train_mean_token_accuracy);
                metrics.final_valid_loss = rows.iter().rev().find_map(|r| r.valid_loss);
                metrics.loss_curve = rows
                    .iter()
                    .filter_map(|r| r.train_loss.map(|l| (r.step, l)))
                    .collect();
            }
        }
        let events = self.hub.list_events(job_id, None, 100).await?.data.len();
        let checkpoints = self
            .hub
            .list_checkpoints(job_id, None, 10)
            .await?
            .data
            .len();
        let model = job.fine_tuned_model.clone().unwrap_or_default();
        let mut moved = false;
        runs::update(self.store.as_ref(), &run.id, |r| {
            if r.stage == Stage::Training {
                r.job_status = Some(job.status.clone());
                r.fine_tuned_model = Some(model.clone());
                r.trained_tokens = job.trained_tokens;
                r.metrics = Some(metrics.clone());
                r.transition(
                    Stage::Evaluating,
                    ACTOR_PIPELINE,
                    format!(
                        "training succeeded: {model} ({events} events, {checkpoints} checkpoints)"
                    ),
                    self.now(),
                );
                moved = true;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        // The results are in reports: the Hub's copies (and the data files) can go.
        self.job_ended(run, &job.result_files).await?;
        if !moved {
            return Ok(Emitted::default());
        }
        Ok(Emitted {
            notifications: vec![Notification::TrainingSucceeded {
                run_id: run.id.clone(),
                project: run.project.clone(),
                model,
            }],
            next: vec![Message::TrainingCompleted {
                run_id: run.id.clone(),
            }],
        })
    }
}
