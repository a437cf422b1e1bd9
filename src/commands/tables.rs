//! Text for the terminal from the Status API's JSON views (the same JSON `--json` prints),
//! so the CLI reads the same whether it reached the app or storage. Columns size to their
//! content; stages and health words are coloured only when the caller says the output is a
//! terminal that wants colour.

use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// ANSI colour for a stage, status or health word: green for where a run should be, red for
/// a stop, yellow for what needs a look; none for the rest.
fn colour_of(word: &str) -> Option<&'static str> {
    match word {
        "prod" | "test" | "dev" | "evaluated" | "healthy" | "verified" | "restored"
        | "accepted" | "passed" | "serving" | "ok" => Some("32"),
        "rejected" | "training_failed" | "evaluation_failed" | "failed" | "degraded"
        | "missing" | "refused" | "approval_refused" => Some("31"),
        "stalled" | "unmanaged" | "drift" | "stale" | "cancelled" | "queued" | "waiting" => {
            Some("33")
        }
        _ => None,
    }
}

/// A word, coloured when `colour` is on and the word has a colour.
pub fn paint(word: &str, colour: bool) -> String {
    match colour_of(word) {
        Some(c) if colour => format!("\x1b[{c}m{word}\x1b[0m"),
        _ => word.to_owned(),
    }
}

/// A table whose columns are as wide as their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// Whether only the header is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// The text; the cells of the `coloured` columns are painted when `colour` is on.
    pub fn render(&self, coloured: &[usize], colour: bool) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|x| x.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, r) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                let last = c + 1 == r.len();
                let pad = widths[c].saturating_sub(cell.chars().count());
                if i > 0 && coloured.contains(&c) {
                    line.push_str(&paint(cell, colour));
                } else {
                    line.push_str(cell);
                }
                if !last {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `fthub status` / `fthub runs list`: one line per run; SERVING names the environments
/// where the run's release is the one serving now (after a rollback only the restored run
/// serves, even though both reached the environment).
pub fn runs(v: &Value, colour: bool) -> String {
    let list = v["runs"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no runs\n".into();
    }
    let mut t = Table::new(&["RUN", "STAGE", "SERVING", "SUBMITTED BY", "MODEL"]);
    for r in &list {
        let serving: Vec<&str> = r["serving"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut stage = s(&r["stage"]).to_owned();
        if r["stalled"].is_object() {
            stage.push_str(" (stalled)");
        }
        t.row([
            s(&r["id"]).to_owned(),
            stage,
            if serving.is_empty() {
                "-".into()
            } else {
                serving.join(",")
            },
            s(&r["submitted_by"]).to_owned(),
            s(&r["model"]).to_owned(),
        ]);
    }
    t.render(&[1], colour)
}

/// `fthub status RUN`: the run in a screenful — what it is, where it is, what is wrong,
/// and its last steps. `--json` has everything.
pub fn run_detail(v: &Value, colour: bool) -> String {
    let r = &v["run"];
    let mut out = format!(
        "run        {}\nproject    {} · submission {} · by {}\nstage      {}\n",
        s(&r["id"]),
        s(&r["project"]),
        s(&r["submission"]),
        s(&r["submitted_by"]),
        paint(s(&r["stage"]), colour),
    );
    if let Some(p) = v["queue_position"].as_u64() {
        out.push_str(&format!("queue      position {p} for the Hub\n"));
    }
    if let Some(w) = r["waiting"].as_str() {
        out.push_str(&format!("waiting    {w}\n"));
    }
    out.push_str(&format!("base model {}\n", s(&r["base_model"])));
    if let Some(job) = r["job_id"].as_str() {
        out.push_str(&format!("job        {job} ({})\n", s(&r["job_status"])));
    }
    if let Some(m) = r["fine_tuned_model"].as_str() {
        out.push_str(&format!("model      {m}\n"));
    }
    let val = &r["validation"];
    if val.is_object() {
        out.push_str(&format!(
            "validation {} · {} examples, {} tokens\n",
            paint(
                if val["accepted"] == true {
                    "accepted"
                } else {
                    "rejected"
                },
                colour
            ),
            val["training_examples"],
            val["training_tokens"]
        ));
        for reason in val["reasons"].as_array().into_iter().flatten() {
            out.push_str(&format!("           ✗ {}\n", s(reason)));
        }
    }
    let ev = &r["evaluation"];
    if ev.is_object() {
        out.push_str(&format!(
            "evaluation {} · score {:.3} vs baseline {:.3} · p95 {:.0} ms\n",
            paint(
                if ev["passed"] == true {
                    "passed"
                } else {
                    "failed"
                },
                colour
            ),
            ev["score"].as_f64().unwrap_or(0.0),
            ev["baseline_score"].as_f64().unwrap_or(0.0),
            ev["p95_latency_ms"].as_f64().unwrap_or(0.0),
        ));
        for reason in ev["reasons"].as_array().into_iter().flatten() {
            out.push_str(&format!("           ✗ {}\n", s(reason)));
        }
    }
    for (env, e) in r["environments"].as_object().into_iter().flatten() {
        let status = match s(&e["status"]) {
            "" => "pending",
            x => x,
        };
        let regions: Vec<String> = e["regions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(region, st)| format!("{region} {}", paint(s(&st["status"]), colour)))
            .collect();
        out.push_str(&format!(
            "{env:<10} {}{}{}\n",
            paint(status, colour),
            e["approved_by"]
                .as_str()
                .map_or(String::new(), |a| format!(" · approved by {a}")),
            if regions.is_empty() {
                String::new()
            } else {
                format!(" · {}", regions.join(", "))
            }
        ));
        if let Some(why) = e["refusal"].as_str() {
            out.push_str(&format!("           ✗ {why}\n"));
        }
    }
    if let Some(st) = r["stalled"].as_object() {
        out.push_str(&format!(
            "{} since {}: {} — {} ({})\n",
            paint("stalled", colour),
            s(&st["since"]),
            s(&st["what"]),
            s(&st["reason"]),
            s(&st["detail"])
        ));
    }
    for f in r["flags"].as_array().into_iter().flatten() {
        out.push_str(&format!("flag       {}\n", s(f)));
    }
    let history = r["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        out.push_str("\nlast steps (all with --json):\n");
        for t in history.iter().rev().take(8).rev() {
            out.push_str(&format!("  {}\n", audit_line(t)));
        }
    }
    out
}

/// One audit entry: time, actor, from → to, detail.
fn audit_line(t: &Value) -> String {
    let to = match &t["to"] {
        Value::String(x) => x.clone(),
        Value::Object(o) => o
            .values()
            .next()
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        _ => "?".into(),
    };
    let time = s(&t["time"]);
    format!(
        "{} {:<20} {}{} {}",
        time.get(..19).unwrap_or(time),
        s(&t["actor"]),
        t["from"]
            .as_str()
            .map_or(String::new(), |f| format!("{f} → ")),
        to,
        s(&t["detail"])
    )
}

/// `fthub status audit[/RUN]`: one line per entry.
pub fn audit(v: &Value) -> String {
    let lines = v["audit"].as_array().cloned().unwrap_or_default();
    if lines.is_empty() {
        return "no audit entries\n".into();
    }
    lines
        .iter()
        .map(|t| {
            let run = s(&t["run_id"]);
            format!("{run} {}\n", audit_line(t))
        })
        .collect()
}

/// `fthub status endpoints`: the regional endpoints serving each project.
pub fn endpoints(v: &Value) -> String {
    let mut t = Table::new(&["PROJECT", "ENV", "REGION", "DEPLOYMENT", "RUN", "ENDPOINT"]);
    for (project, envs) in v["endpoints"].as_object().into_iter().flatten() {
        for (env, list) in envs.as_object().into_iter().flatten() {
            for e in list.as_array().into_iter().flatten() {
                t.row([
                    project.as_str(),
                    env.as_str(),
                    s(&e["region"]),
                    s(&e["deployment"]),
                    s(&e["run_id"]),
                    s(&e["endpoint"]),
                ]);
            }
        }
    }
    if t.is_empty() {
        return "no healthy endpoints\n".into();
    }
    t.render(&[], false)
}

/// `fthub status projects`: each project and the run serving in each environment.
pub fn projects(v: &Value) -> String {
    let mut t = Table::new(&["PROJECT", "DEPLOYMENT", "DEV", "TEST", "PROD"]);
    for p in v["projects"].as_array().into_iter().flatten() {
        let cur = |env: &str| s(&p["current"][env]["run_id"]).to_owned();
        t.row([
            s(&p["name"]).to_owned(),
            s(&p["deployment"]).to_owned(),
            cur("dev"),
            cur("test"),
            cur("prod"),
        ]);
    }
    t.render(&[], false)
}

/// `fthub status projects/NAME`: releases per environment (the serving one marked), the
/// deployments, and the newest runs.
pub fn project(v: &Value, colour: bool) -> String {
    let mut out = format!(
        "project {} · deployment {}\n\n",
        s(&v["name"]),
        s(&v["deployment"])
    );
    let mut t = Table::new(&["ENV", "RELEASE", "RUN", "SINCE"]);
    for (env, list) in v["releases"].as_object().into_iter().flatten() {
        let list = list.as_array().cloned().unwrap_or_default();
        for (i, rel) in list.iter().enumerate().rev() {
            let marker = if i + 1 == list.len() {
                "serving"
            } else if rel["rolled_back"] == true {
                "rolled back"
            } else {
                "previous"
            };
            t.row([
                env.as_str(),
                marker,
                s(&rel["run_id"]),
                s(&rel["at"]).get(..19).unwrap_or(s(&rel["at"])),
            ]);
        }
    }
    if t.is_empty() {
        out.push_str("no releases yet\n");
    } else {
        out.push_str(&t.render(&[1], colour));
    }
    out.push('\n');
    out.push_str(&runs(v, colour));
    out
}

/// `fthub status environments`: every deployment on every Spoke.
pub fn environments(v: &Value, colour: bool) -> String {
    let mut t = Table::new(&[
        "ENV",
        "REGION",
        "ACCOUNT",
        "SLOTS",
        "PROJECT",
        "RUN",
        "HEALTH",
        "LAST KEEPALIVE",
    ]);
    for (env, regions) in v["environments"].as_object().into_iter().flatten() {
        for (region, spoke) in regions.as_object().into_iter().flatten() {
            let slots = format!(
                "{}/{}",
                spoke["slots"]["used"],
                spoke["slots"]["limit"]
                    .as_u64()
                    .map_or("?".into(), |l| l.to_string())
            );
            let account = s(&spoke["account"]);
            let deployments = spoke["deployments"].as_array().cloned().unwrap_or_default();
            if deployments.is_empty() {
                t.row([env.as_str(), region, account, &slots, "-"]);
            }
            for d in &deployments {
                t.row([
                    env.as_str(),
                    region,
                    account,
                    &slots,
                    s(&d["project"]),
                    s(&d["run_id"]),
                    s(&d["health"]),
                    s(&d["last_keepalive"]),
                ]);
            }
            for u in spoke["unmanaged"].as_array().into_iter().flatten() {
                t.row([
                    env.as_str(),
                    region,
                    account,
                    &slots,
                    "(not fthub)",
                    s(&u["deployment"]),
                    "unmanaged",
                ]);
            }
        }
    }
    t.render(&[6], colour)
}

/// `fthub status capacity`: slots per Spoke, the Hub's slots, jobs, files and queue.
pub fn capacity(v: &Value) -> String {
    let mut t = Table::new(&["ENV", "REGION", "ACCOUNT", "SLOTS", "HELD BY"]);
    for sp in v["spokes"].as_array().into_iter().flatten() {
        let holders: Vec<String> = sp["holders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| match h["project"].as_str() {
                Some(p) => format!("{p} ({})", s(&h["kind"])),
                None => format!("{} (unmanaged)", s(&h["deployment"])),
            })
            .collect();
        t.row([
            s(&sp["environment"]).to_owned(),
            s(&sp["region"]).to_owned(),
            s(&sp["account"]).to_owned(),
            format!("{}/{}", sp["used"], sp["limit"]),
            holders.join(", "),
        ]);
    }
    let mut out = t.render(&[], false);
    let hub = &v["hub"];
    if !hub.is_null() {
        let e = &hub["evaluation_slots"];
        out.push_str(&format!(
            "\nHub {}: evaluation slots {}/{} ({} waiting) · job slots {}/{} ({} running + {} queued) · files {}/{} ({} bytes of {})\n",
            s(&hub["account"]),
            e["used"],
            e["limit"],
            e["waiting"].as_array().map_or(0, Vec::len),
            hub["jobs"]["held"],
            hub["jobs"]["limit"],
            hub["jobs"]["running_limit"],
            hub["jobs"]["queued_limit"],
            hub["files"]["in_use"],
            hub["files"]["limit"],
            hub["files"]["bytes_in_use"],
            hub["files"]["bytes_limit"],
        ));
    }
    let line: Vec<&str> = v["queue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if line.is_empty() {
        out.push_str("Training queue: empty\n");
    } else {
        out.push_str("Training queue, in the order runs will start:\n");
        for (i, r) in line.iter().enumerate() {
            out.push_str(&format!("  {:>3}. {r}\n", i + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_capacity_table_names_who_holds_each_spokes_slots_and_the_queue_order() {
        let v = json!({"spokes": [{"environment": "dev", "region": "eastus2", "account": "dev-eastus2",
            "used": 2, "limit": 5, "holders": [{"deployment": "ft-a", "project": "a", "kind": "deployed"},
            {"deployment": "legacy", "project": null, "kind": "unmanaged"}]}],
            "hub": {"account": "hub", "evaluation_slots": {"used": 1, "limit": 5, "waiting": []},
            "jobs": {"held": 2, "limit": 21, "running_limit": 1, "queued_limit": 20},
            "files": {"in_use": 6, "limit": 50, "bytes_in_use": 10, "bytes_limit": 20}},
            "queue": ["b-s1-x", "a-s2-y"]});
        let t = capacity(&v);
        assert!(
            t.contains("2/5") && t.contains("a (deployed), legacy (unmanaged)"),
            "{t}"
        );
        assert!(
            t.contains("job slots 2/21") && t.contains("files 6/50"),
            "{t}"
        );
        assert!(t.contains("1. b-s1-x") && t.contains("2. a-s2-y"), "{t}");
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_colour_only_when_asked() {
        let mut t = Table::new(&["A", "STAGE"]);
        t.row(["a-very-long-run-id", "prod"]).row(["x", "rejected"]);
        let plain = t.render(&[1], false);
        assert_eq!(
            plain,
            "A                   STAGE\na-very-long-run-id  prod\nx                   rejected\n"
        );
        assert!(!plain.contains('\x1b'));
        let coloured = t.render(&[1], true);
        assert!(coloured.contains("\x1b[32mprod\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[31mrejected\x1b[0m"), "{coloured}");
        assert!(
            coloured.starts_with("A                   STAGE\n"),
            "headers stay plain"
        );
    }

    #[test]
    fn after_a_rollback_the_runs_table_marks_only_the_run_that_serves() {
        let v = json!({"runs": [
            {"id": "p-new-1", "stage": "prod", "serving": [], "submitted_by": "ana", "model": "m2"},
            {"id": "p-old-0", "stage": "prod", "serving": ["dev", "test", "prod"], "submitted_by": "ana", "model": "m1"}]});
        let t = runs(&v, false);
        let new = t.lines().find(|l| l.starts_with("p-new-1")).expect("new");
        let old = t.lines().find(|l| l.starts_with("p-old-0")).expect("old");
        let serving = |l: &str| l.split_whitespace().nth(2).unwrap_or("").to_owned();
        assert_eq!(serving(new), "-", "{t}");
        assert_eq!(serving(old), "dev,test,prod", "{t}");
    }

    #[test]
    fn a_run_reads_as_a_screenful_with_its_refusals_and_last_steps() {
        let v = json!({"run": {"id": "p-s-1", "project": "p", "submission": "s", "submitted_by": "ana",
            "stage": "evaluated", "base_model": "gpt-4.1-mini-2025-04-14", "job_id": "ftjob-1", "job_status": "succeeded",
            "validation": {"accepted": true, "reasons": [], "training_examples": 10, "training_tokens": 900},
            "evaluation": {"passed": true, "score": 0.9, "baseline_score": 0.5, "p95_latency_ms": 120.0, "reasons": []},
            "environments": {"test": {"status": "", "regions": {}, "approved_by": null, "refusal": "the Spoke test-a has no free slot"}},
            "flags": ["eval_set_sampled"],
            "history": [{"time": "2026-12-06T10:00:00.123Z", "actor": "ValidateSubmission", "run_id": "p-s-1", "from": null, "to": "queued", "detail": "accepted"}]}});
        let t = run_detail(&v, false);
        for want in [
            "stage      evaluated",
            "job        ftjob-1 (succeeded)",
            "score 0.900 vs baseline 0.500",
            "test       pending",
            "✗ the Spoke test-a has no free slot",
            "flag       eval_set_sampled",
            "2026-12-06T10:00:00 ValidateSubmission",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
    }
}
