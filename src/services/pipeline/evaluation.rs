use super::*;
use crate::domain::evaluation as scoring;
use crate::domain::heldout::{Example, Plan};
use crate::domain::run::EvalProgress;

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

/// The deployable base model of a dated base-model name: its family
/// (`gpt-4o-2024-08-06` → `gpt-4o`), or the name itself when the family is unknown.
fn base_deployment_model(base: &str) -> String {
    tokens::model_spec(base).map_or_else(|| base.to_owned(), |s| s.family.to_owned())
}

impl Pipeline {
    async fn answer_all(
        &self,
        client: &Arc<dyn Inference>,
        deployment: &str,
        model: &str,
        set: &[Example],
    ) -> Result<Vec<Answered>, PipelineError> {
        use futures_util::stream::{self, TryStreamExt as _};
        stream::iter(set.iter().cloned().map(Ok::<_, PipelineError>))
            .map_ok(
                |Example {
                     prompt: messages,
                     expected,
                 }| {
                    let client = client.clone();
                    async move {
                        let r = client
                            .chat(
                                deployment,
                                model,
                                &ChatRequest {
                                    messages,
                                    max_tokens: Some(200),
                                    temperature: Some(0.0),
                                },
                            )
                            .await?;
                        Ok(Answered {
                            expected,
                            answer: r.content,
                            latency_ms: r.latency_ms as f64,
                            prompt_tokens: r.usage.prompt_tokens,
                            completion_tokens: r.usage.completion_tokens,
                        })
                    }
                },
            )
            .try_buffered(self.eval_concurrency.max(1))
            .try_collect()
            .await
    }

    /// Scores `set` on one deployment batch by batch, skipping batches stored by an earlier
    /// invocation and storing each new one as it completes. `None` when `deadline` passed
    /// first: the next invocation resumes at the first missing batch.
    #[allow(clippy::too_many_arguments)]
    async fn answer_batched(
        &self,
        run_id: &str,
        label: &str,
        client: &Arc<dyn Inference>,
        deployment: &str,
        model: &str,
        plan: &Plan,
        set: &[Example],
        deadline: tokio::time::Instant,
    ) -> Result<Option<Vec<Answered>>, PipelineError> {
        let mut all = Vec::with_capacity(set.len());
        let mut scored = 0;
        for (b, chunk) in set.chunks(plan.batch_size.max(1)).enumerate() {
            if let Some(done) = self.stored_batch(run_id, label, b).await? {
                all.extend(done);
                continue;
            }
            // At least one batch per invocation, so even a tiny budget makes progress.
            if scored > 0 && tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            scored += 1;
            let answers = self.answer_all(client, deployment, model, chunk).await?;
            self.store_batch(run_id, label, b, &answers).await?;
            all.extend(answers);
        }
        Ok(Some(all))
    }

    /// Evaluates the candidate against the base model and the model now in Prod.
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
        let outcome = async {
            // Inside the guarded block: a deploy that fails half-way is removed too.
            self.arm
                .put(&hub.resource_id, &candidate, &spec, None)
                .await?;
            self.arm
                .put(&hub.resource_id, &base_dep, &base_spec, None)
                .await?;
            let hub_client = self.inference(&hub.name)?.clone();
            let batched =
                |label: &'static str, client: Arc<dyn Inference>, dep: String, model: String| {
                    let (plan, set) = (&plan, &set);
                    async move {
                        let answers = self
                            .answer_batched(id, label, &client, &dep, &model, plan, set, deadline)
                            .await?;
                        Ok::<_, PipelineError>(answers.map(|a| scoring::score(label, &dep, &a)))
                    }
                };
            let Some(cand) = batched(
                "candidate",
                hub_client.clone(),
                candidate.clone(),
                model.clone(),
            )
            .await?
            else {
                return Ok(None);
            };
            let Some(base) = batched(
                "base",
                hub_client.clone(),
                base_dep.clone(),
                base_spec.model.clone(),
            )
            .await?
            else {
                return Ok(None);
            };
            let mut baselines = vec![base];
            let (inv, _) = inventory::load(self.store.as_ref()).await?;
            // The baseline is this project's Prod release, never another project's model.
            let ours = self.topology.deployment_name(&run.project);
            if let Some(prod) = inv
                .environments
                .get("prod")
                .and_then(|e| e.regions.values().find(|x| x.deployment == ours))
            {
                let client = self.inference(&prod.account)?.clone();
                let Some(p) =
                    batched("prod", client, prod.deployment.clone(), prod.model.clone()).await?
                else {
                    return Ok(None);
                };
                baselines.push(p);
            }
            Ok::<_, PipelineError>(Some((cand, baselines)))
        }
        .await;
        let paused = matches!(outcome, Ok(None));
        if paused {
            // Out of this invocation's time: keep the deployment for the next one, and say
            // where it stopped so the reconciler resumes at once.
            let done = self.batches_done(id, &plan).await?;
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
        // Finished or failed: the evaluation deployment is removed either way.
        if let Err(e) = self.arm.delete(&hub.resource_id, &candidate).await {
            tracing::warn!(error = %e, deployment = %candidate, "Could not remove the evaluation deployment.");
        }
        let Some((cand, baselines)) = outcome? else {
            return Ok(None);
        };
        let d = &self.topology.defaults;
        let price = |m: ModelScore| {
            m.priced(
                d.price_per_1k_prompt_tokens,
                d.price_per_1k_completion_tokens,
            )
        };
        let cand = price(cand);
        let baselines: Vec<ModelScore> = baselines.into_iter().map(price).collect();
        let thresholds = m.thresholds_or(&self.topology.defaults);
        let (passed, best, reasons) = scoring::verdict(&cand, &baselines, &thresholds);
        let report = json!({"run_id": id, "examples": set.len(), "held_out": plan, "candidate": cand, "baselines": baselines, "thresholds": thresholds, "passed": passed, "reasons": reasons});
        self.put_report(
            id,
            "evaluation.json",
            &serde_json::to_vec_pretty(&report).unwrap_or_default(),
        )
        .await?;
        let mut md = format!(
            "# Evaluation: `{id}`\n\n**Verdict: {}**\n\n{}\n\n",
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
        if let Some(parent_id) = &m.parent_run {
            md.push_str(&self.lineage(&run, parent_id, cand.score).await?);
        }
        self.put_report(id, "evaluation.md", md.as_bytes()).await?;
        let scores: Vec<ModelScore> = std::iter::once(cand.clone())
            .chain(baselines.iter().cloned())
            .collect();
        let html = crate::views::reports::evaluation(id, passed, &reasons, &scores);
        self.put_report(id, "evaluation.html", html.as_bytes())
            .await?;
        let labels = 1 + baselines.len();
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
            return Ok(Some((Emitted::default(), verdict)));
        }
        let kind = if passed {
            "evaluation.passed"
        } else {
            "evaluation.failed"
        };
        Ok(Some((
            Emitted {
                notifications: vec![
                    json!({"type": kind, "run_id": id, "score": cand.score, "baseline": best, "report": format!("reports/{id}/evaluation.md")}),
                ],
                next: vec![json!({"run_id": id, "passed": passed})],
            },
            verdict,
        )))
    }

    /// Batches stored so far, over every model scored.
    async fn batches_done(&self, id: &str, plan: &Plan) -> Result<usize, PipelineError> {
        let stored = self
            .store
            .list(REPORTS, &format!("{id}/eval/"))
            .await?
            .iter()
            .filter(|p| p.name.ends_with(".json") && !p.name.ends_with("plan.json"))
            .count();
        Ok(stored.min(plan.batches() * 3))
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
