//! The declarations in `functions/*/function.json` and the handler's routes agree.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn function_jsons() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("functions");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("functions/") {
        let e = e.expect("entry");
        let path = e.path().join("function.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} has no function.json", e.path().display()));
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            serde_json::from_str(&text).expect("valid JSON"),
        ));
    }
    out
}

fn bindings(v: &Value) -> &Vec<Value> {
    v["bindings"].as_array().expect("bindings")
}

#[test]
fn every_function_json_has_a_route_in_the_handler_and_every_route_has_a_function_json() {
    let on_disk: BTreeSet<String> = function_jsons().into_iter().map(|(n, _)| n).collect();
    let in_code: BTreeSet<String> = fthub::functions::ALL
        .iter()
        .map(|s| s.name.to_owned())
        .collect();
    assert_eq!(on_disk, in_code);
}

#[test]
fn the_trigger_type_and_name_match_the_handlers_declaration() {
    for (name, fj) in function_jsons() {
        let spec = fthub::functions::spec(&name).expect("spec");
        let triggers: Vec<&Value> = bindings(&fj)
            .iter()
            .filter(|b| b["type"].as_str().unwrap_or("").ends_with("Trigger"))
            .collect();
        assert_eq!(triggers.len(), 1, "{name}");
        assert_eq!(triggers[0]["type"], spec.trigger_type, "{name}");
        assert_eq!(triggers[0]["name"], spec.trigger, "{name}");
    }
}

#[test]
fn the_handler_writes_only_outputs_its_function_json_declares() {
    for (name, fj) in function_jsons() {
        let spec = fthub::functions::spec(&name).expect("spec");
        let declared: BTreeSet<&str> = bindings(&fj)
            .iter()
            .filter(|b| b["direction"] == "out")
            .filter_map(|b| b["name"].as_str())
            .collect();
        let written: BTreeSet<&str> = spec.outputs.iter().copied().collect();
        assert_eq!(written, declared, "{name}");
    }
}

#[test]
fn text_outputs_set_binary_data_type_so_the_host_does_not_base64_decode_them() {
    for (name, fj) in function_jsons() {
        for b in bindings(&fj)
            .iter()
            .filter(|b| b["direction"] == "out" && b["type"] == "serviceBus")
        {
            assert_eq!(b["dataType"], "binary", "{name}/{}", b["name"]);
        }
    }
}

#[test]
fn timers_fire_well_inside_the_fifteen_day_inactivity_window() {
    for (name, fj) in function_jsons() {
        for b in bindings(&fj).iter().filter(|b| b["type"] == "timerTrigger") {
            let expr = b["schedule"].as_str().expect("schedule");
            let cron = fthub::local::timer::parse_schedule(expr).expect("valid NCRONTAB");
            let mut t = chrono::Utc::now();
            for _ in 0..40 {
                let next = fthub::local::timer::next_after(&cron, t).expect("next");
                assert!(
                    next - t < chrono::Duration::days(2),
                    "{name}: gap {} days",
                    (next - t).num_days()
                );
                t = next;
            }
        }
    }
}

#[test]
fn host_json_starts_the_fthub_binary_with_serve() {
    let app = fthub::local::app::FunctionApp::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .expect("app loads");
    assert_eq!(app.host.executable, "fthub");
    assert_eq!(app.host.arguments, ["serve"]);
    assert_eq!(app.functions.len(), 13);
    assert_eq!(app.subscriptions[0].function, "DatasetArrived");
}

#[test]
fn a_message_lock_is_renewed_for_longer_than_any_invocation_may_run() {
    // Renewal shorter than functionTimeout would let a long evaluation's message lock lapse
    // mid-invocation, and Service Bus would deliver it again beside the live invocation.
    let host: Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("host.json"))
            .expect("host.json"),
    )
    .expect("json");
    let seconds = |v: &Value| -> i64 {
        let parts: Vec<i64> = v
            .as_str()
            .expect("hh:mm:ss")
            .split(':')
            .map(|p| p.parse().expect("number"))
            .collect();
        parts[0] * 3600 + parts[1] * 60 + parts[2]
    };
    let timeout = seconds(&host["functionTimeout"]);
    let renewal = seconds(&host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"]);
    assert!(
        renewal > timeout,
        "renewal {renewal} s, timeout {timeout} s"
    );
}
