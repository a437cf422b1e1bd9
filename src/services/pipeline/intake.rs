use super::*;

async fn blob_digest(store: &dyn BlobStore, name: &str) -> Result<(String, u64), BlobError> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt as _;
    let (props, mut reader) = store.open(DATASETS_CONTAINER, name).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| BlobError::Io {
                what: format!("read {name}"),
                source,
            })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        props.content_length,
    ))
}

impl Pipeline {
    /// A blob was created in `datasets`: a manifest starts its submission, a bare `.jsonl`
    /// runs with the project's defaults, other submission files wait for their manifest.
    ///
    /// # Errors
    /// Refused for names outside the layout or a malformed manifest.
    pub async fn on_dataset_blob(&self, name: &str) -> Result<Emitted, PipelineError> {
        let path = DatasetPath::parse(DATASETS_CONTAINER, name)
            .map_err(|e| refused("invalid_dataset_path", e.to_string()))?;
        let (project, submission, manifest, prefix) = match path {
            DatasetPath::SubmissionFile { .. } => return Ok(Emitted::default()),
            DatasetPath::Manifest {
                project,
                submission,
            } => {
                let (_, bytes) = self.store.get(DATASETS_CONTAINER, name).await?;
                let m = Manifest::from_json(&bytes)
                    .map_err(|e| refused("invalid_manifest", format!("manifest.json: {e}")))?;
                let prefix = format!("{project}/{submission}/");
                (project, submission, m, prefix)
            }
            DatasetPath::BareDrop { project, file } => {
                let submission = file.trim_end_matches(".jsonl").to_owned();
                (
                    project.clone(),
                    submission,
                    Manifest::bare(&file),
                    format!("{project}/"),
                )
            }
        };
        self.start(&project, &submission, manifest, &prefix).await
    }

    /// Validates a submission, creates its run (or finds it) and submits it for training.
    ///
    /// # Errors
    /// Refused for missing files; retryable storage or Azure failures.
    pub async fn start(
        &self,
        project: &str,
        submission: &str,
        manifest: Manifest,
        prefix: &str,
    ) -> Result<Emitted, PipelineError> {
        let datasets = self.datasets(&manifest).await?;
        let mut files = Vec::new();
        for f in manifest.files() {
            let blob = format!("{prefix}{f}");
            let (digest, bytes) = match blob_digest(datasets.as_ref(), &blob).await {
                Ok(v) => v,
                Err(BlobError::NotFound { .. }) => {
                    return Err(refused(
                        "missing_dataset_file",
                        format!("{blob} is named by the manifest but missing"),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            files.push(DataFile {
                name: f,
                blob,
                digest,
                bytes,
            });
        }
        let digests: Vec<String> = files.iter().map(|f| f.digest.clone()).collect();
        let id = run_id(project, submission, &digests, &manifest.settings_digest());
        let found = match runs::get(self.store.as_ref(), &id).await? {
            Some((run, _)) => Some(run),
            // A run started before ids covered the manifest, with these same settings.
            None => {
                let legacy = crate::domain::run::legacy_run_id(project, submission, &digests);
                runs::get(self.store.as_ref(), &legacy)
                    .await?
                    .map(|(old, _)| old)
                    .filter(|old| old.manifest.settings_digest() == manifest.settings_digest())
            }
        };
        if let Some(run) = found {
            let id = run.id.clone();
            // A redelivered event, or the same bytes uploaded again: continue, never restart.
            return match run.stage {
                Stage::Queued => self.start_queued(&id).await,
                Stage::Uploading => self.submit_to_hub(&id).await,
                _ => Ok(Emitted::default()),
            };
        }
        let topo = &self.topology;
        let base_model = manifest.base_model.clone().unwrap_or_else(|| {
            topo.project(project)
                .base_model
                .unwrap_or_else(|| topo.defaults.base_model.clone())
        });
        let rules = Rules::for_manifest(&manifest, base_model.clone()).ok_or_else(|| {
            refused(
                "unknown_model",
                format!("base model {base_model:?} is not a known family"),
            )
        })?;
        let mut validated: Vec<(String, Validated)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let training = role_of(&f.name, i == 0) == FileRole::Training;
            let v = validate_blob(
                datasets.as_ref(),
                DATASETS_CONTAINER,
                &f.blob,
                training,
                rules.clone(),
                StreamOptions::default(),
            )
            .await?;
            validated.push((f.name.clone(), v));
        }
        let report = validation::submission(validated, &rules);
        let json_report = serde_json::to_vec_pretty(&report).unwrap_or_default();
        self.put_report(&id, "validation.json", &json_report)
            .await?;
        let md: String = report
            .files
            .iter()
            .map(|f| f.to_markdown() + "\n")
            .collect();
        self.put_report(&id, "validation.md", md.as_bytes()).await?;
        let html = crate::views::reports::validation(&id, &report);
        self.put_report(&id, "validation.html", html.as_bytes())
            .await?;
        let training = &report.files[0];
        let accepted = report.verdict == crate::domain::validation::report::Verdict::Accepted;
        let mut warnings = report.warnings.clone();
        warnings.extend(
            report
                .files
                .iter()
                .flat_map(|f| f.warnings.iter().map(|w| format!("{}: {w}", f.file))),
        );
        let reasons: Vec<String> = report
            .files
            .iter()
            .flat_map(|f| f.reasons.iter().map(|r| format!("{}: {r}", f.file)))
            .chain(
                report
                    .reasons
                    .iter()
                    .filter(|r| !r.starts_with("at least one file"))
                    .cloned(),
            )
            .collect();
        let now = self.now();
        let mut run = Run::new(
            crate::domain::run::NewRun {
                id: id.clone(),
                project: project.to_owned(),
                submission: submission.to_owned(),
                submitted_by: manifest
                    .submitted_by
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
                manifest: manifest.clone(),
                base_model,
                data_digest: sha256_hex(digests.join("\n").as_bytes()),
                files,
            },
            Stage::Queued,
            now,
        );
        run.validation = Some(ValidationSummary {
            accepted,
            reasons: reasons.clone(),
            warnings: warnings.clone(),
            training_examples: training.valid_examples,
            training_tokens: training.tokens.total,
            billing_tokens: training.billing_tokens,
        });
        run.flags = report
            .leakage
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{n} examples of {f} also appear in the training data"))
            .collect();
        run.queued_at = accepted.then_some(now);
        if let Some(parent) = &manifest.parent_run {
            run.flags.push(format!("iterates on {parent}"));
        }
        let needs = crate::domain::queue::Queued::of(&run);
        let limits = self.topology.hub_limits;
        let retired = if accepted {
            match self.lifecycle(&run.base_model).await {
                Lifecycle::Retired(why) => Some(why),
                Lifecycle::Retiring(note) | Lifecycle::Unknown(note) => {
                    run.flags.push(note);
                    None
                }
                Lifecycle::Current => None,
            }
        } else {
            None
        };
        let (to, detail) = if !accepted {
            (Stage::Rejected, reasons.join("; "))
        } else if let Some(why) = retired {
            (Stage::Rejected, why)
        } else if let Err(why) = self.deployable(&run.base_model) {
            (
                Stage::Rejected,
                format!(
                    "a fine-tune of {} could not be deployed where this estate needs it: {why}",
                    run.base_model
                ),
            )
        } else if !crate::domain::queue::Ledger::fits_at_all(&needs, &limits) {
            (
                Stage::Rejected,
                format!(
                    "the submission needs {} Hub files and {} bytes; the Hub holds at most {} files and {} bytes",
                    needs.files, needs.bytes, limits.files, limits.file_bytes
                ),
            )
        } else {
            (Stage::Queued, "dataset validated".to_owned())
        };
        run.history.push(crate::domain::run::Transition {
            time: now,
            actor: run.submitted_by.clone(),
            run_id: id.clone(),
            project: project.to_owned(),
            from: None,
            to: crate::domain::run::Step::Stage(to),
            detail: detail.clone(),
            approval: None,
        });
        run.stage = to;
        if !runs::create(self.store.as_ref(), &run).await? {
            return Ok(Emitted::default());
        }
        if to == Stage::Rejected {
            return Ok(Emitted::notify(Notification::RunRejected {
                run_id: id.clone(),
                project: project.to_owned(),
                reasons: if accepted { vec![detail] } else { reasons },
                report: Some(format!("reports/{id}/validation.md")),
            }));
        }
        self.start_queued(&id).await
    }

    /// Offers the Hub's free slots to the queue (fairly), then submits this run if it got one.
    pub(super) async fn start_queued(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (active, _) = runs::active(self.store.as_ref()).await?;
        let started = self.dispatch(&active).await?;
        if started.iter().any(|r| r == id) {
            return self.submit_to_hub(id).await;
        }
        let project = active
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.project.clone())
            .unwrap_or_default();
        Ok(Emitted::notify(Notification::RunQueued {
            run_id: id.to_owned(),
            project,
        }))
    }
}
