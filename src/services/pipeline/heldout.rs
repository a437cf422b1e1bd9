//! A durable evaluation's storage: the plan and the (sampled) held-out set are written once,
//! before the first batch; each batch's answers are stored as it completes, so a crash, a
//! timeout or a retry resumes at the first missing batch, across invocations.
//!
//! `reports/{run}/eval/plan.json`, `…/eval/set.jsonl`, `…/eval/{label}/{batch}.json`.

use tokio::io::AsyncBufReadExt as _;

use super::*;
use crate::domain::heldout::{self, Example, Plan};

fn blob(id: &str, name: &str) -> String {
    format!("{id}/eval/{name}")
}

impl Pipeline {
    /// The run's held-out set: planned and stored on the first call (streaming the eval
    /// file twice: count, then pick the sample), read back on every later one.
    pub(super) async fn heldout(
        &self,
        run: &Run,
        datasets: &dyn BlobStore,
        eval_blob: &str,
    ) -> Result<(Plan, Vec<Example>), PipelineError> {
        let id = run.id.as_str();
        if let Some(plan) = self.read_json::<Plan>(&blob(id, "plan.json")).await? {
            let (_, bytes) = self.store.get(REPORTS, &blob(id, "set.jsonl")).await?;
            let set = String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            return Ok((plan, set));
        }
        let mut total = 0usize;
        self.each_example(datasets, eval_blob, |_, _| total += 1)
            .await?;
        let seed = heldout::seed_of(id);
        let chosen = heldout::sample(total, self.eval_cap, seed);
        let mut set = Vec::with_capacity(chosen.len());
        let mut next = chosen.iter().peekable();
        self.each_example(datasets, eval_blob, |i, e| {
            if next.peek() == Some(&&i) {
                next.next();
                set.push(e);
            }
        })
        .await?;
        let plan = Plan {
            total,
            selected: set.len(),
            cap: self.eval_cap,
            sampled: total > self.eval_cap,
            seed,
            batch_size: self.eval_batch.max(1),
        };
        let mut lines = Vec::new();
        for e in &set {
            lines.extend(serde_json::to_vec(e).unwrap_or_default());
            lines.push(b'\n');
        }
        self.put_report(id, "eval/set.jsonl", &lines).await?;
        // The plan last: its presence means the set is whole.
        self.put_report(
            id,
            "eval/plan.json",
            &serde_json::to_vec_pretty(&plan).unwrap_or_default(),
        )
        .await?;
        Ok((plan, set))
    }

    /// Calls `f(index, example)` for every example of the eval file, streamed.
    async fn each_example(
        &self,
        datasets: &dyn BlobStore,
        eval_blob: &str,
        mut f: impl FnMut(usize, Example),
    ) -> Result<(), PipelineError> {
        let (_, reader) = datasets.open(DATASETS_CONTAINER, eval_blob).await?;
        let mut lines = tokio::io::BufReader::new(reader).lines();
        let mut i = 0;
        loop {
            let line = lines.next_line().await.map_err(|source| BlobError::Io {
                what: format!("read {eval_blob}"),
                source,
            })?;
            let Some(line) = line else { return Ok(()) };
            if let Some(e) = heldout::parse_example(&line) {
                f(i, e);
                i += 1;
            }
        }
    }

    /// The batches of `label` stored so far (one listing, however many there are).
    pub(super) async fn stored_batches(
        &self,
        id: &str,
        label: &str,
    ) -> Result<std::collections::BTreeSet<usize>, PipelineError> {
        let prefix = blob(id, &format!("{label}/"));
        Ok(self
            .store
            .list(REPORTS, &prefix)
            .await?
            .iter()
            .filter_map(|p| {
                p.name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect())
    }

    /// The stored answers of batch `b` for `label`, if it was scored already.
    pub(super) async fn stored_batch(
        &self,
        id: &str,
        label: &str,
        b: usize,
    ) -> Result<Option<Vec<Answered>>, PipelineError> {
        self.read_json(&blob(id, &format!("{label}/{b:05}.json")))
            .await
    }

    /// Stores batch `b`'s answers for `label`.
    pub(super) async fn store_batch(
        &self,
        id: &str,
        label: &str,
        b: usize,
        answers: &[Answered],
    ) -> Result<(), PipelineError> {
        self.put_report(
            id,
            &format!("eval/{label}/{b:05}.json"),
            &serde_json::to_vec(answers).unwrap_or_default(),
        )
        .await
        .map_err(Into::into)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, PipelineError> {
        match self.store.get(REPORTS, name).await {
            Ok((_, bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
