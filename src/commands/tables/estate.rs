//! Projects, environments, endpoints and capacity.

use serde_json::Value;

use super::{Table, s};

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
    out.push_str(&super::runs(v, colour));
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
