//! Runs, one run, and audit lines.

use serde_json::Value;

use super::{Table, paint, s};

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
