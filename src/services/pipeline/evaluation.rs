use super::*;
use crate::domain::evaluation as scoring;
use crate::domain::heldout::{Example, Plan};
use crate::domain::ratelimit::Limits;
use crate::domain::run::EvalProgress;
use serde_json::json;

/// What the report says of the set's coverage: whole, or sampled with its seed.
fn coverage(plan: &Plan) -> String {
    if plan.sampled {
        format!(
            "Held-out set: {} of {} examples, sampled uniformly (cap {}, seed {}).",
            plan.selected, plan.total, plan.cap, plan.seed
        )
    } else {
        format!("Held-out set: all {} examples.", plan.total)
    }
}

/// A deployment scored on the held-out set.
#[derive(Debug, Clone)]
struct Target {
    /// `candidate`, `base`, `prod` or `parent`.
    label: &'static str,
    /// Its account.
    account: String,
    /// Its deployment.
    deployment: String,
    /// Its model.
    model: String,
    /// Its capacity units (its rate limits follow).
    capacity: u32,
}

/// `max_tokens` for the evaluation calls: room for twice the longest expected answer
/// (about 4 characters a token), so a one-word label does not reserve 200 tokens of the
/// deployment's per-minute budget per call.
fn answer_budget(set: &[Example]) -> u32 {
    let longest = set.iter().map(|e| e.expected.len()).max().unwrap_or(0);
    u32::try_from(longest / 4 * 2 + 16)
        .unwrap_or(u32::MAX)
        .min(4096)
}

/// The deployable base model of a dated base-model name: its family
/// (`gpt-4o-2024-08-06` → `gpt-4o`), or the name itself when the family is unknown.
fn base_deployment_model(base: &str) -> String {
    tokens::model_spec(base).map_or_else(|| base.to_owned(), |s| s.family.to_owned())
}

impl Pipeline {
    /// Answers every example on `t`, at most `eval_concurrency` calls in flight, each
    /// paced within the deployment's rate limits; a call refused for the rate limit waits
    /// as asked (every caller of that deployment with it) and goes again.
    async fn answer_all(
        &self,
        t: &Target,
        set: &[Example],
        max_tokens: u32,
    ) -> Result<Vec<Answered>, PipelineError> {
        use futures_util::stream::{self, TryStreamExt as _};
        let client = self.inference(&t.account)?.clone();
        let key = format!("{}/{}", t.account, t.deployment);
        let limits = Limits::of(&t.model, t.capacity, self.rpm_per_unit);
        let (client, key) = (&client, &key);
        stream::iter(set.iter().cloned().map(Ok::<_, PipelineError>))
            .map_ok(
                |Example {
                     prompt: messages,
                     expected,
                 }| async move {
                    // Azure counts the prompt and max_tokens at arrival; ~4 characters a token.
                    let prompt: usize = messages
                        .iter()
                        .map(|m| m.content.as_deref().map_or(0, str::len) / 4 + 4)
                        .sum();
                    let tokens = prompt as u64 + u64::from(max_tokens);
                    let req = ChatRequest {
                        messages,
                        max_tokens: Some(max_tokens),
                        temperature: Some(0.0),
                    };
                    let mut refusals = 0;
                    let r = loop {
                        self.pacers.acquire(key, limits, tokens).await;
                        match client.chat(&t.deployment, &t.model, &req).await {
                            Ok(r) => break r,
                            Err(e) => match pacing::throttled(&e) {
                                Some(wait) if refusals < 10 => {
                                    refusals += 1;
                                    self.pacers.throttled(key, wait);
                                }
                                _ => return Err(e.into()),
                            },
                        }
                    };
                    Ok(Answered {
                        expected,
                        answer: r.content,
                        latency_ms: r.latency_ms as f64,
                        prompt_tokens: r.usage.prompt_tokens,
                        completion_tokens: r.usage.completion_tokens,
                    })
                },
            )
            .try_buffered(self.eval_concurrency.max(1))
            .try_collect()
            .await
    }

    /// Scores `set` on one deployment batch by batch, skipping the batches an earlier
    /// invocation stored (one listing tells which) and storing each new one as it
    /// completes. `false` when `deadline` passed first: the next invocation resumes at the
    /// first missing batch. The answers are read back once, for scoring, by [`Self::answers`].
    async fn answer_batched(
        &self,
        run_id: &str,
        t: &Target,
        plan: &Plan,
        set: &[Example],
        deadline: tokio::time::Instant,
    ) -> Result<bool, PipelineError> {
        let label = t.label;
        let max_tokens = answer_budget(set);
        let stored = self.stored_batches(run_id, label).await?;
        let mut scored = 0;
        for (b, chunk) in set.chunks(plan.batch_size.max(1)).enumerate() {
            if stored.contains(&b) {
                continue;
            }
            // At least one batch per invocation, so even a tiny budget makes progress.
            if scored > 0 && tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            scored += 1;
            let answers = self.answer_all(t, chunk, max_tokens).await?;
            self.store_batch(run_id, label, b, &answers).await?;
        }
        Ok(true)
    }

    /// Evaluates the candidate against the base model, this project's Prod release and the
    /// parent run (when it serves), once the Hub has a deployment slot for it. While every
    /// slot is held by other evaluations the run waits its turn, visibly.
    ///
    /// # Errors
    /// Retryable Azure failures (the evaluation deployment is removed either way).
    pub async fn evaluate(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {id} does not exist")))?;
        if run.stage != Stage::Evaluating {
            // Already evaluated (a redelivery), or not trained yet.
            return Ok(Emitted::default());
        }
        let candidate = super::operator::eval_deployment(id);
        let waiting = match self.eval_slot(&run, &candidate).await? {
            super::slots::EvalSlot::Held => None,
            super::slots::EvalSlot::Waiting { position, holders } => Some(format!(
                "a Hub evaluation slot: position {position} in line; all {} held by {holders}",
                self.topology.hub.deployment_slots
            )),
        };
        if run.waiting != waiting {
            let now = self.now();
            runs::update(self.store.as_ref(), id, |r| {
                if let Some(w) = &waiting
                    && r.waiting.is_none()
                {
                    r.note(
                        ACTOR_PIPELINE,
                        Event::Waiting,
                        format!("waiting for {w}"),
                        now,
                    );
                }
                r.waiting.clone_from(&waiting);
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        if waiting.is_some() {
            return Ok(Emitted::default());
        }
        // One evaluation per run: a concurrent duplicate waits for it instead of deploying,
        // scoring and deleting the candidate a second time.
        let mut emitted = Emitted::default();
        self.resumable_effect(
            id,
            "evaluate",
            |_| async {
                Ok(match self.evaluate_claimed(id, run).await? {
                    Some((e, verdict)) => {
                        emitted = e;
                        Some(verdict.to_owned())
                    }
                    None => None,
                })
            },
            |_, _| {},
        )
        .await?;
        Ok(emitted)
    }

    async fn evaluate_claimed(
        &self,
        id: &str,
        run: Run,
    ) -> Result<Option<(Emitted, &'static str)>, PipelineError> {
        let model = run
            .fine_tuned_model
            .clone()
            .ok_or_else(|| refused("no_model", "the run has no fine-tuned model"))?;
        let m = &run.manifest;
        let eval_file = m
            .eval_file
            .clone()
            .or_else(|| m.validation_file.clone())
            .unwrap_or_else(|| m.training_file.clone());
        let blob = run
            .files
            .iter()
            .find(|f| f.name == eval_file)
            .map(|f| f.blob.clone())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + self.eval_budget;
        let datasets = self.datasets(&run.manifest).await?;
        let (plan, set) = self.heldout(&run, datasets.as_ref(), &blob).await?;
        let hub = self.topology.hub.clone();
        let d = &self.topology.deployment;
        let candidate = super::operator::eval_deployment(id);
        let (spec, _) =
            self.deployment_spec(&model, &run, &hub, &d.evaluation_sku, d.evaluation_capacity);
        let base_dep = format!("base-{}", run.base_model.replace('.', "-"));
        let base_spec = DeploymentSpec {
            model: base_deployment_model(&run.base_model),
            source: None,
            source_account: None,
            ..spec.clone()
        };
        let (others, skipped) = self.baselines(&run).await?;
        let outcome = async {
            // Inside the guarded block: a deploy that fails half-way is removed too.
            self.arm.put(&hub, &candidate, &spec, None).await?;
            self.eval_deployed(&run, &candidate, &model).await?;
            // The base model's deployment is shared by every evaluation of that model.
            let ready =
                self.arm.get(&hub, &base_dep).await?.is_some_and(|d| {
                    d.properties.provisioning_state.as_deref() == Some("Succeeded")
                });
            if !ready {
                self.arm.put(&hub, &base_dep, &base_spec, None).await?;
            }
            let on_hub = |label, deployment: &str, model: &str| Target {
                label,
                account: hub.name.clone(),
                deployment: deployment.to_owned(),
                model: model.to_owned(),
                capacity: d.evaluation_capacity,
            };
            let mut targets = vec![
                on_hub("candidate", &candidate, &model),
                on_hub("base", &base_dep, &base_spec.model),
            ];
            targets.extend(others.iter().cloned());
            for t in &targets {
                if !self.answer_batched(id, t, &plan, &set, deadline).await? {
                    return Ok(None);
                }
            }
            let mut scores = Vec::new();
            for t in &targets {
                let answers = self.answers(id, t.label, &plan).await?;
                scores.push(scoring::score(t.label, &t.deployment, &answers));
            }
            Ok::<_, PipelineError>(Some(scores))
        }
        .await;
        if matches!(outcome, Ok(None)) {
            // Out of this invocation's time: keep the deployment for the next one, and say
            // where it stopped so the reconciler resumes at once.
            let labels = 2 + others.len();
            let done = self.batches_done(id, &plan, labels).await?;
            let now = self.now();
            runs::update(self.store.as_ref(), id, |r| {
                r.eval_progress = Some(EvalProgress {
                    plan: plan.clone(),
                    batches_done: done,
                    paused_at: Some(now),
                });
                Ok::<(), PipelineError>(())
            })
            .await?;
            tracing::info!(run_id = %id, batches_done = done, "Evaluation paused at its time budget; resumed next.");
            return Ok(None);
        }
        // Finished or failed: the evaluation deployment is removed either way (if that
        // fails too, the reconciler removes it: the Hub's record names it).
        let mut next = Vec::new();
        match self.remove_eval_deployment(id, &candidate).await {
            Ok(Some(waiter)) => next.push(Message::TrainingCompleted { run_id: waiter }),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, deployment = %candidate, "Could not remove the evaluation deployment; the reconciler will.");
            }
        }
        let Some(scores) = outcome? else {
            return Ok(None);
        };
        let d = &self.topology.defaults;
        let mut scores: Vec<ModelScore> = scores
            .into_iter()
            .map(|s| {
                s.priced(
                    d.price_per_1k_prompt_tokens,
                    d.price_per_1k_completion_tokens,
                )
            })
            .collect();
        let cand = scores.remove(0);
        let baselines = scores;
        let thresholds = self.topology.thresholds(&run.project, m.thresholds);
        let (passed, best, reasons) = scoring::verdict(&cand, &baselines, &thresholds);
        let report = json!({"run_id": id, "project": run.project, "examples": set.len(), "held_out": plan, "candidate": cand, "baselines": baselines, "baselines_not_scored": skipped, "thresholds": thresholds, "passed": passed, "reasons": reasons});
        self.put_report(
            id,
            "evaluation.json",
            &serde_json::to_vec_pretty(&report).unwrap_or_default(),
        )
        .await?;
        let mut md = format!(
            "# Evaluation: `{id}` (project {})\n\n**Verdict: {}**\n\n{}\n\n",
            run.project,
            if passed { "passed" } else { "failed" },
            coverage(&plan)
        );
        for r in &reasons {
            md.push_str(&format!("- ✗ {r}\n"));
        }
        md.push_str("\n| Model | Score | Exact match | Token F1 | p50 ms | p95 ms | Prompt tok | Completion tok | Cost / 1k req |\n|---|---|---|---|---|---|---|---|---|\n");
        for s in std::iter::once(&cand).chain(&baselines) {
            md.push_str(&format!(
                "| {} (`{}`) | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.1} | {:.1} | {:.4} |\n",
                s.label,
                s.deployment,
                s.score,
                s.exact_match,
                s.token_f1,
                s.latency_p50_ms,
                s.latency_p95_ms,
                s.prompt_tokens,
                s.completion_tokens,
                s.cost_per_1k_requests
            ));
        }
        for s in &skipped {
            md.push_str(&format!("\nNot scored: {s}\n"));
        }
        if let Some(parent_id) = &m.parent_run {
            md.push_str(&self.lineage(&run, parent_id, cand.score).await?);
        }
        self.put_report(id, "evaluation.md", md.as_bytes()).await?;
        let all: Vec<ModelScore> = std::iter::once(cand.clone())
            .chain(baselines.iter().cloned())
            .collect();
        let html =
            crate::views::reports::evaluation_judged(id, passed, &reasons, &all, Some(&thresholds));
        self.put_report(id, "evaluation.html", html.as_bytes())
            .await?;
        let labels = all.len();
        let summary = EvaluationSummary {
            passed,
            score: cand.score,
            baseline_score: best,
            p95_latency_ms: cand.latency_p95_ms,
            reasons: reasons.clone(),
        };
        let mut moved = false;
        runs::update(self.store.as_ref(), id, |r| {
            if r.stage == Stage::Evaluating {
                r.eval_progress = Some(EvalProgress {
                    plan: plan.clone(),
                    batches_done: plan.batches() * labels,
                    paused_at: None,
                });
                r.evaluation = Some(summary.clone());
                let to = if passed {
                    Stage::Evaluated
                } else {
                    Stage::EvaluationFailed
                };
                let detail = format!(
                    "score {:.3} vs baseline {:.3}{}",
                    summary.score,
                    best,
                    if passed {
                        String::new()
                    } else {
                        format!(": {}", reasons.join("; "))
                    }
                );
                r.transition(to, ACTOR_PIPELINE, detail, self.now());
                moved = true;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        let verdict = if passed { "passed" } else { "failed" };
        if !moved {
            return Ok(Some((
                Emitted {
                    notifications: vec![],
                    next,
                },
                verdict,
            )));
        }
        next.push(Message::EvaluationCompleted {
            run_id: id.to_owned(),
            passed,
        });
        Ok(Some((
            Emitted {
                notifications: vec![Notification::EvaluationCompleted {
                    run_id: id.to_owned(),
                    project: run.project.clone(),
                    passed,
                    score: cand.score,
                    baseline: best,
                    report: format!("reports/{id}/evaluation.md"),
                }],
                next,
            },
            verdict,
        )))
    }

    /// The baselines besides the base model: this project's Prod release, and the parent
    /// run when the manifest names one and it serves somewhere (a model that serves
    /// nowhere has no deployment to score). Also says what was not scored, and why.
    async fn baselines(&self, run: &Run) -> Result<(Vec<Target>, Vec<String>), PipelineError> {
        let estate = inventory::estate(self.store.as_ref(), &self.topology).await?;
        let record = inventory::project(self.store.as_ref(), &run.project).await?;
        let capacity = self.topology.deployment.capacity;
        let serving = |run_id: &str| -> Option<(Target, String)> {
            Env::ALL.into_iter().rev().find_map(|env| {
                estate
                    .deployments(&run.project, env)
                    .into_iter()
                    .find(|(_, d)| d.run_id == run_id && d.health.serves())
                    .map(|(a, d)| {
                        let t = Target {
                            label: "prod",
                            account: a.name.clone(),
                            deployment: d.deployment.clone(),
                            model: d.model.clone(),
                            capacity,
                        };
                        (t, run_id.to_owned())
                    })
            })
        };
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        let mut prod_run = None;
        match record.current(Env::Prod) {
            Some(prod) => match serving(&prod.run_id) {
                Some((b, r)) => {
                    out.push(b);
                    prod_run = Some(r);
                }
                None => skipped.push(format!(
                    "the Prod release of project {} ({}) has no healthy deployment to query",
                    run.project, prod.run_id
                )),
            },
            None => skipped.push(format!("project {} has no Prod release yet", run.project)),
        }
        if let Some(parent) = &run.manifest.parent_run {
            if prod_run.as_ref() == Some(parent) {
                skipped.push(format!(
                    "parent run {parent} is the Prod release, scored as prod"
                ));
            } else {
                match serving(parent) {
                    Some((b, _)) => out.push(Target {
                        label: "parent",
                        ..b
                    }),
                    None => skipped.push(format!(
                        "parent run {parent} serves in no environment, so it has no deployment to query; its own evaluation is in the lineage table"
                    )),
                }
            }
        }
        Ok((out, skipped))
    }

    /// Stored answers of `label`, in batch order.
    async fn answers(
        &self,
        id: &str,
        label: &str,
        plan: &Plan,
    ) -> Result<Vec<Answered>, PipelineError> {
        let mut all = Vec::with_capacity(plan.selected);
        for b in 0..plan.batches() {
            let batch = self.stored_batch(id, label, b).await?.ok_or_else(|| {
                PipelineError::Store(BlobError::NotFound {
                    container: REPORTS.into(),
                    name: format!("{id}/eval/{label}/{b:05}.json"),
                })
            })?;
            all.extend(batch);
        }
        Ok(all)
    }

    /// Batches stored so far, over the `labels` models scored.
    async fn batches_done(
        &self,
        id: &str,
        plan: &Plan,
        labels: usize,
    ) -> Result<usize, PipelineError> {
        let stored = self
            .store
            .list(REPORTS, &format!("{id}/eval/"))
            .await?
            .iter()
            .filter(|p| p.name.ends_with(".json") && !p.name.ends_with("plan.json"))
            .count();
        Ok(stored.min(plan.batches() * labels))
    }

    /// A Markdown section comparing a run with the run it iterates on.
    async fn lineage(
        &self,
        run: &Run,
        parent_id: &str,
        score: f64,
    ) -> Result<String, PipelineError> {
        let Some((parent, _)) = runs::get(self.store.as_ref(), parent_id).await? else {
            return Ok(format!(
                "\n## Lineage\n\nParent run `{parent_id}` was not found.\n"
            ));
        };
        let hp = |r: &Run| serde_json::to_string(&r.manifest.hyperparameters).unwrap_or_default();
        let loss = |r: &Run| {
            r.metrics
                .as_ref()
                .and_then(|m| m.final_train_loss)
                .map_or("-".to_owned(), |l| format!("{l:.4}"))
        };
        let eval = |s: Option<f64>| s.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let examples = |r: &Run| r.validation.as_ref().map_or(0, |v| v.training_examples);
        Ok(format!(
            "\n## Lineage\n\n| | Parent `{}` | This run |\n|---|---|---|\n| Data digest | `{}` | `{}` |\n| Training examples | {} | {} |\n| Hyperparameters | `{}` | `{}` |\n| Final training loss | {} | {} |\n| Evaluation score | {} | {} |\n",
            parent.id,
            &parent.data_digest[..12.min(parent.data_digest.len())],
            &run.data_digest[..12.min(run.data_digest.len())],
            examples(&parent),
            examples(run),
            hp(&parent),
            hp(run),
            loss(&parent),
            loss(run),
            eval(parent.evaluation.as_ref().map(|e| e.score)),
            eval(Some(score)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_deploys_the_family_of_a_dated_base_model() {
        assert_eq!(base_deployment_model("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(
            base_deployment_model("gpt-4.1-mini-2025-04-14"),
            "gpt-4.1-mini"
        );
        assert_eq!(base_deployment_model("gpt-35-turbo-0125"), "gpt-35-turbo");
        assert_eq!(base_deployment_model("custom-model"), "custom-model");
    }
}
