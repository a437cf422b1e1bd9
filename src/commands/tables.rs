//! Text tables for the terminal from the Status API's JSON views (the same JSON `--json`
//! prints), so the CLI reads the same whether it reached the app or storage.

use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// `fthub status projects`: each project and the run serving in each environment.
pub fn projects(v: &Value) -> String {
    let mut out = format!(
        "{:<22} {:<24} {:<30} {:<30} {}\n",
        "PROJECT", "DEPLOYMENT", "DEV", "TEST", "PROD"
    );
    for p in v["projects"].as_array().into_iter().flatten() {
        let cur = |env: &str| s(&p["current"][env]["run_id"]).to_owned();
        out.push_str(&format!(
            "{:<22} {:<24} {:<30} {:<30} {}\n",
            s(&p["name"]),
            s(&p["deployment"]),
            cur("dev"),
            cur("test"),
            cur("prod")
        ));
    }
    out
}

/// `fthub status environments`: every deployment on every Spoke.
pub fn environments(v: &Value) -> String {
    let mut out = format!(
        "{:<6} {:<16} {:<22} {:<8} {:<18} {:<34} {:<9} {}\n",
        "ENV", "REGION", "ACCOUNT", "SLOTS", "PROJECT", "RUN", "HEALTH", "LAST KEEPALIVE"
    );
    for (env, regions) in v["environments"].as_object().into_iter().flatten() {
        for (region, spoke) in regions.as_object().into_iter().flatten() {
            let slots = format!(
                "{}/{}",
                spoke["slots"]["used"],
                spoke["slots"]["limit"]
                    .as_u64()
                    .map_or("?".into(), |l| l.to_string())
            );
            let deployments = spoke["deployments"].as_array().cloned().unwrap_or_default();
            if deployments.is_empty() {
                out.push_str(&format!(
                    "{env:<6} {region:<16} {:<22} {slots:<8} -\n",
                    s(&spoke["account"])
                ));
            }
            for d in &deployments {
                out.push_str(&format!(
                    "{env:<6} {region:<16} {:<22} {slots:<8} {:<18} {:<34} {:<9} {}\n",
                    s(&spoke["account"]),
                    s(&d["project"]),
                    s(&d["run_id"]),
                    s(&d["health"]),
                    s(&d["last_keepalive"])
                ));
            }
            for u in spoke["unmanaged"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{env:<6} {region:<16} {:<22} {slots:<8} {:<18} {:<34} unmanaged\n",
                    s(&spoke["account"]),
                    "(not fthub)",
                    s(&u["deployment"]),
                ));
            }
        }
    }
    out
}

/// `fthub status capacity`: slots per Spoke, the Hub's slots, jobs, files and queue.
pub fn capacity(v: &Value) -> String {
    let mut out = format!(
        "{:<6} {:<16} {:<22} {:<7} {}\n",
        "ENV", "REGION", "ACCOUNT", "SLOTS", "HELD BY"
    );
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
        out.push_str(&format!(
            "{:<6} {:<16} {:<22} {:<7} {}\n",
            s(&sp["environment"]),
            s(&sp["region"]),
            s(&sp["account"]),
            format!("{}/{}", sp["used"], sp["limit"]),
            holders.join(", ")
        ));
    }
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
}
