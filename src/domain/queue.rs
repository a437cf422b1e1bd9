//! The Hub's fair training queue: runs beyond the Hub's job limits wait, and free slots go
//! round-robin across projects, first-in-first-out within a project, so a project that
//! submits ten runs cannot starve another's single run. Also the ledger of what the Hub
//! holds (job slots, files), which the dispatcher plans within.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::topology::HubLimits;

/// A run waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Run.
    pub run_id: String,
    /// Project.
    pub project: String,
    /// When it joined the queue.
    pub queued_at: DateTime<Utc>,
    /// Hub files it will upload (its data files, plus the job's result file).
    pub files: usize,
    /// Bytes it will upload.
    pub bytes: u64,
}

impl Queued {
    /// What a run will hold on the Hub: its data files and the job's result file.
    pub fn of(run: &super::run::Run) -> Self {
        Self {
            run_id: run.id.clone(),
            project: run.project.clone(),
            queued_at: run.queued_at.unwrap_or(run.created_at),
            files: run.files.len() + 1,
            bytes: run.files.iter().map(|f| f.bytes).sum(),
        }
    }
}

/// A run holding one of the Hub's job slots (from dispatch until its job ends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSlot {
    /// Project.
    pub project: String,
    /// Granted at.
    pub since: DateTime<Utc>,
    /// Files it holds on the Hub (planned at dispatch).
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Dispatch order (1, 2, …), for fairness and for tests to read.
    pub seq: u64,
}

/// A Hub file kept after its run stopped needing it, until its retention ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// The run it belonged to.
    pub run_id: String,
    /// Its size.
    pub bytes: u64,
    /// Delete it from then on.
    pub delete_after: DateTime<Utc>,
}

/// `state/hub/ledger.json`: what the Hub holds for fthub, so the dispatcher never asks for
/// more than its limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ledger {
    /// Runs holding a job slot.
    pub jobs: BTreeMap<String, JobSlot>,
    /// Hub files kept for their retention, by file id.
    pub retained: BTreeMap<String, Retained>,
    /// The last dispatch sequence number per project (0: never).
    pub last_dispatch: BTreeMap<String, u64>,
    /// The last sequence number given.
    pub seq: u64,
    /// The Hub refused a job for its limits: no dispatch before then.
    pub paused_until: Option<DateTime<Utc>>,
}

impl Ledger {
    /// Files held: planned for running jobs, and retained.
    pub fn files_in_use(&self) -> usize {
        self.jobs.values().map(|j| j.files).sum::<usize>() + self.retained.len()
    }

    /// Bytes held.
    pub fn bytes_in_use(&self) -> u64 {
        self.jobs.values().map(|j| j.bytes).sum::<u64>()
            + self.retained.values().map(|r| r.bytes).sum::<u64>()
    }

    /// Grants job slots to waiting runs in fair order while the limits allow; returns the
    /// runs granted, in order. The head of the line goes first: a run that does not fit the
    /// file limits yet holds back the runs behind it, so a large run is never overtaken
    /// forever.
    pub fn dispatch(
        &mut self,
        waiting: &[Queued],
        limits: &HubLimits,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let order = fair_order(waiting, &self.last_dispatch);
        let by_id: BTreeMap<&str, &Queued> =
            waiting.iter().map(|q| (q.run_id.as_str(), q)).collect();
        let mut granted = Vec::new();
        if self.paused_until.is_some_and(|t| t > now) {
            return granted;
        }
        for id in order {
            if self.jobs.contains_key(&id) {
                continue;
            }
            let q = by_id[id.as_str()];
            let fits = self.jobs.len() < limits.job_slots()
                && self.files_in_use() + q.files <= limits.files
                && self.bytes_in_use() + q.bytes <= limits.file_bytes;
            if !fits {
                break;
            }
            {
                self.seq += 1;
                self.last_dispatch.insert(q.project.clone(), self.seq);
                self.jobs.insert(
                    id.clone(),
                    JobSlot {
                        project: q.project.clone(),
                        since: now,
                        files: q.files,
                        bytes: q.bytes,
                        seq: self.seq,
                    },
                );
                granted.push(id);
            }
        }
        granted
    }

    /// The waiting runs (those not holding a slot) in the order they will be started.
    pub fn line(&self, waiting: &[Queued]) -> Vec<String> {
        let waiting: Vec<Queued> = waiting
            .iter()
            .filter(|q| !self.jobs.contains_key(&q.run_id))
            .cloned()
            .collect();
        fair_order(&waiting, &self.last_dispatch)
    }

    /// Gives a run's job slot back (its job ended, it was cancelled, or the Hub refused it).
    pub fn release(&mut self, run_id: &str) {
        self.jobs.remove(run_id);
    }

    /// Whether `q` could ever be started on this Hub, even alone.
    pub fn fits_at_all(q: &Queued, limits: &HubLimits) -> bool {
        q.files <= limits.files && q.bytes <= limits.file_bytes
    }
}

/// The order in which waiting runs get slots: round-robin across projects, starting with
/// the project served longest ago (never first), each project's runs oldest first.
pub fn fair_order(waiting: &[Queued], last_dispatch: &BTreeMap<String, u64>) -> Vec<String> {
    let mut per_project: BTreeMap<&str, Vec<&Queued>> = BTreeMap::new();
    for q in waiting {
        per_project.entry(q.project.as_str()).or_default().push(q);
    }
    let mut lanes: Vec<(u64, DateTime<Utc>, &str, VecDeque<&Queued>)> = per_project
        .into_iter()
        .map(|(p, mut runs)| {
            runs.sort_by(|a, b| (a.queued_at, &a.run_id).cmp(&(b.queued_at, &b.run_id)));
            let served = last_dispatch.get(p).copied().unwrap_or(0);
            (served, runs[0].queued_at, p, runs.into())
        })
        .collect();
    lanes.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut out = Vec::with_capacity(waiting.len());
    while lanes.iter().any(|l| !l.3.is_empty()) {
        for lane in &mut lanes {
            if let Some(q) = lane.3.pop_front() {
                out.push(q.run_id.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(project: &str, n: i64) -> Queued {
        Queued {
            run_id: format!("{project}-{n}"),
            project: project.into(),
            queued_at: DateTime::from_timestamp(1_800_000_000 + n, 0).expect("t"),
            files: 3,
            bytes: 1000,
        }
    }

    fn limits(running: usize, queued: usize) -> HubLimits {
        HubLimits {
            running_jobs: running,
            queued_jobs: queued,
            ..HubLimits::default()
        }
    }

    #[test]
    fn ten_runs_of_one_project_do_not_starve_a_single_run_of_another() {
        let mut waiting: Vec<Queued> = (0..10).map(|n| q("alpha", n)).collect();
        waiting.push(q("beta", 50));
        waiting.push(q("gamma", 60));
        let order = fair_order(&waiting, &BTreeMap::new());
        assert_eq!(
            &order[..5],
            ["alpha-0", "beta-50", "gamma-60", "alpha-1", "alpha-2"]
        );
        // Once alpha was served last, a newcomer from another project goes before it.
        let last = BTreeMap::from([("alpha".to_owned(), 7)]);
        let order = fair_order(&waiting, &last);
        assert_eq!(&order[..3], ["beta-50", "gamma-60", "alpha-0"]);
    }

    #[test]
    fn slots_are_granted_up_to_the_job_limits_in_fair_order_and_positions_are_kept() {
        let now = DateTime::from_timestamp(1_800_001_000, 0).expect("t");
        let mut l = Ledger::default();
        let mut waiting: Vec<Queued> = (0..4).map(|n| q("alpha", n)).collect();
        waiting.push(q("beta", 10));
        let granted = l.dispatch(&waiting, &limits(1, 1), now);
        assert_eq!(granted, ["alpha-0", "beta-10"]);
        assert_eq!(l.line(&waiting), ["alpha-1", "alpha-2", "alpha-3"]);
        // Nothing more until a slot frees; then the next one.
        let still: Vec<Queued> = waiting[1..4].to_vec();
        assert!(l.dispatch(&still, &limits(1, 1), now).is_empty());
        l.release("alpha-0");
        assert_eq!(l.dispatch(&still, &limits(1, 1), now), ["alpha-1"]);
        assert_eq!(l.jobs["alpha-1"].seq, 3);
    }

    #[test]
    fn the_file_limits_hold_runs_back_and_retained_files_count_until_deleted() {
        let now = DateTime::from_timestamp(1_800_001_000, 0).expect("t");
        let mut l = Ledger::default();
        let files = HubLimits {
            files: 7,
            ..limits(1, 20)
        };
        let waiting: Vec<Queued> = (0..3).map(|n| q("alpha", n)).collect();
        assert_eq!(
            l.dispatch(&waiting, &files, now).len(),
            2,
            "3 + 3 files fit 7"
        );
        l.release("alpha-0");
        for f in ["file-1", "file-2"] {
            l.retained.insert(
                f.into(),
                Retained {
                    run_id: "alpha-0".into(),
                    bytes: 10,
                    delete_after: now,
                },
            );
        }
        assert!(
            l.dispatch(&waiting[2..], &files, now).is_empty(),
            "3 + 2 + 3 > 7"
        );
        l.retained.clear();
        assert_eq!(l.dispatch(&waiting[2..], &files, now), ["alpha-2"]);
        // A pause after a refusal from the Hub stops dispatch until it ends.
        l.release("alpha-1");
        l.release("alpha-2");
        l.paused_until = Some(now + chrono::Duration::minutes(1));
        assert!(l.dispatch(&waiting[..1], &files, now).is_empty());
        assert_eq!(l.line(&waiting[..1]), ["alpha-0"]);
    }
}
