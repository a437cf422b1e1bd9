//! `fthub dev`, the local Functions host stand-in, driven end to end: real processes,
//! real HTTP, a handler written independently of fthub (tests/support/recording_handler.py),
//! and the real `fthub serve`.

use crate::common;

use std::time::Duration;

use crate::common::{Dev, RecorderApp, eventually, undouble};
use fthub::adapters::local::bus::{LocalBus, OutgoingMessage};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn event_grid_app() -> RecorderApp {
    let app = RecorderApp::new(
        &[(
            "DatasetArrived",
            json!({"bindings": [{"type": "eventGridTrigger", "direction": "in", "name": "event"}]}),
        )],
        json!({}),
    );
    std::fs::write(
        app.path().join("eventgrid.json"),
        json!({"subscriptions": [{"name": "s", "function": "DatasetArrived", "container": "datasets",
            "includedEventTypes": ["Microsoft.Storage.BlobCreated"], "subjectBeginsWith": "/blobServices/default/containers/datasets/blobs/"}]})
        .to_string(),
    )
    .expect("eventgrid.json");
    app
}

fn service_bus_app(extra_host: Value) -> RecorderApp {
    RecorderApp::new(
        &[(
            "Work",
            json!({"bindings": [{"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "work", "connection": "SB"}]}),
        )],
        extra_host,
    )
}

fn event_of(inv: &Value) -> Value {
    serde_json::from_str(&undouble(&inv["body"]["Data"]["event"])).expect("event JSON")
}

#[tokio::test]
async fn a_file_written_into_local_storage_triggers_dataset_arrived_once_per_blob_version() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = event_grid_app();
    let home = tempfile::tempdir().expect("tmp");
    let mut dev = Dev::start(app.path(), home.path(), &[]).await;
    let blob = home.path().join("storage/datasets/acme/s1/manifest.json");
    std::fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
    std::fs::write(&blob, br#"{"base_model":"gpt-4.1-mini"}"#).expect("drop");

    assert!(eventually(WAIT, || app.invocations("DatasetArrived").len() == 1).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let first = app.invocations("DatasetArrived");
    assert_eq!(first.len(), 1, "one version, one invocation");
    let ev = event_of(&first[0]);
    assert_eq!(ev["eventType"], "Microsoft.Storage.BlobCreated");
    assert_eq!(
        ev["subject"],
        "/blobServices/default/containers/datasets/blobs/acme/s1/manifest.json"
    );
    assert_eq!(ev["data"]["contentLength"], 29);
    assert!(
        ev["data"]["url"]
            .as_str()
            .expect("url")
            .ends_with("/datasets/acme/s1/manifest.json")
    );
    assert_eq!(
        undouble(&first[0]["body"]["Metadata"]["subject"]),
        ev["subject"].as_str().expect("subject"),
        "JSON body hoisted into Metadata"
    );
    assert_eq!(
        first[0]["body"]["Metadata"]["sys"]["MethodName"],
        "DatasetArrived"
    );
    let headers = first[0]["headers"].as_object().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    assert!(header("X-Azure-Functions-InvocationId").is_some_and(|id| id.len() == 36));
    assert_eq!(header("X-Azure-Functions-HostVersion"), Some("4.1037.0.0"));
    assert!(header("Content-Type").is_some_and(|c| c.starts_with("application/json")));

    std::fs::write(&blob, br#"{"base_model":"gpt-4.1"}"#).expect("overwrite");
    assert!(
        eventually(WAIT, || app.invocations("DatasetArrived").len() == 2).await,
        "an overwrite is a new version"
    );
    let second = event_of(&app.invocations("DatasetArrived")[1]);
    assert_ne!(second["data"]["eTag"], ev["data"]["eTag"]);

    // Receipts survive a crash: nothing is delivered again after a restart.
    dev.crash();
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.invocations("DatasetArrived").len(), 2);
}

#[tokio::test]
async fn a_blob_version_that_keeps_failing_is_poisoned_after_five_tries() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = event_grid_app();
    app.set_behaviour(json!({"DatasetArrived": {"status": 500}}));
    let home = tempfile::tempdir().expect("tmp");
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    let blob = home.path().join("storage/datasets/acme/bad.jsonl");
    std::fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
    std::fs::write(&blob, b"{}\n").expect("drop");
    let bus = LocalBus::new(home.path().join("bus"));
    assert!(
        eventually(WAIT, || bus
            .active("webjobs-blobtrigger-poison")
            .map(|m| m.len() == 1)
            .unwrap_or(false))
        .await
    );
    let poison: Value =
        serde_json::from_str(&bus.active("webjobs-blobtrigger-poison").expect("poison")[0].body)
            .expect("json");
    assert_eq!(poison["FunctionId"], "Host.Functions.DatasetArrived");
    assert_eq!(poison["ContainerName"], "datasets");
    assert_eq!(poison["BlobName"], "acme/bad.jsonl");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.invocations("DatasetArrived").len(), 5);
}

#[tokio::test]
async fn a_failing_service_bus_message_is_redelivered_with_a_growing_delivery_count_and_dead_lettered_after_ten()
 {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = service_bus_app(json!({}));
    app.set_behaviour(json!({"Work": {"status": 500}}));
    let home = tempfile::tempdir().expect("tmp");
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    let bus = LocalBus::new(home.path().join("bus"));
    bus.send_to_queue(
        "work",
        OutgoingMessage {
            body: r#"{"n":1}"#.into(),
            message_id: Some("m-1".into()),
            ..Default::default()
        },
    )
    .expect("send");
    assert!(
        eventually(WAIT, || bus
            .dead_letters("work")
            .map(|d| d.len() == 1)
            .unwrap_or(false))
        .await
    );
    let counts: Vec<String> = app
        .invocations("Work")
        .iter()
        .map(|i| {
            i["body"]["Metadata"]["DeliveryCount"]
                .as_str()
                .expect("stringly")
                .to_owned()
        })
        .collect();
    assert_eq!(counts, (1..=10).map(|n| n.to_string()).collect::<Vec<_>>());
    let dl = &bus.dead_letters("work").expect("dlq")[0];
    assert_eq!(
        dl.dead_letter_reason.as_deref(),
        Some("MaxDeliveryCountExceeded")
    );
    assert!(bus.active("work").expect("active").is_empty());
    let first = &app.invocations("Work")[0]["body"];
    assert_eq!(undouble(&first["Data"]["msg"]), r#"{"n":1}"#);
    assert_eq!(undouble(&first["Metadata"]["MessageId"]), "m-1");
    assert_eq!(first["Metadata"]["n"], "\"1\"", "JSON body hoisted");
}

#[tokio::test]
async fn a_killed_and_restarted_dev_host_still_delivers_the_messages_it_held() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = service_bus_app(json!({}));
    app.set_behaviour(json!({"Work": {"hang": true}}));
    let home = tempfile::tempdir().expect("tmp");
    let mut dev = Dev::start(app.path(), home.path(), &["--lock-duration", "2"]).await;
    let bus = LocalBus::new(home.path().join("bus"));
    for i in 0..3 {
        bus.send_to_queue(
            "work",
            OutgoingMessage {
                body: format!("{{\"i\":{i}}}"),
                message_id: Some(format!("held-{i}")),
                ..Default::default()
            },
        )
        .expect("send");
    }
    assert!(
        eventually(WAIT, || app.invocations("Work").len() == 3).await,
        "all three are in flight"
    );
    dev.crash();
    app.set_behaviour(json!({}));
    let _dev = Dev::start(app.path(), home.path(), &["--lock-duration", "2"]).await;
    assert!(
        eventually(WAIT, || bus
            .active("work")
            .map(|a| a.is_empty())
            .unwrap_or(false))
        .await,
        "every held message completed"
    );
    let redelivered: Vec<(String, String)> = app.invocations("Work")[3..]
        .iter()
        .map(|i| {
            (
                undouble(&i["body"]["Metadata"]["MessageId"]),
                i["body"]["Metadata"]["DeliveryCount"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let mut ids: Vec<&str> = redelivered.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["held-0", "held-1", "held-2"]);
    assert!(redelivered.iter().all(|(_, c)| c == "2"), "{redelivered:?}");
    assert!(bus.dead_letters("work").expect("dlq").is_empty());
}

#[tokio::test]
async fn a_timer_missed_during_downtime_runs_once_with_is_past_due() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = RecorderApp::new(
        &[(
            "Nightly",
            json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 0 0 1 1 *", "useMonitor": true}]}),
        )],
        json!({}),
    );
    let home = tempfile::tempdir().expect("tmp");
    let status = home
        .path()
        .join("storage/azure-webjobs-hosts/timers/fthub-local/Host.Functions.Nightly/status");
    let mut dev = Dev::start(app.path(), home.path(), &[]).await;
    assert!(
        eventually(WAIT, || status.is_file()).await,
        "the schedule monitor records its status"
    );
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(&status).expect("status")).expect("json");
    assert!(
        recorded["Next"]
            .as_str()
            .expect("next")
            .ends_with("-01-01T00:00:00Z"),
        "{recorded}"
    );
    assert!(app.invocations("Nightly").is_empty(), "nothing was due");
    dev.crash();

    // Downtime spanning an occurrence: the recorded Next is now in the past.
    let missed = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let past =
        json!({"Last": recorded["Last"], "Next": missed, "LastUpdated": recorded["LastUpdated"]});
    std::fs::write(&status, past.to_string()).expect("rewind");
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    assert!(eventually(WAIT, || app.invocations("Nightly").len() == 1).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let runs = app.invocations("Nightly");
    assert_eq!(
        runs.len(),
        1,
        "missed occurrences are not replayed one by one"
    );
    let timer = &runs[0]["body"]["Data"]["timer"];
    assert_eq!(timer["IsPastDue"], true);
    assert!(timer["ScheduleStatus"]["Next"].is_string());
    let after: Value =
        serde_json::from_slice(&std::fs::read(&status).expect("status")).expect("json");
    assert_ne!(after["Next"], json!(missed), "the status moved on");
}

#[tokio::test]
async fn http_requests_reach_http_functions_in_the_hosts_request_envelope_and_outputs_are_delivered()
 {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = RecorderApp::new(
        &[(
            "Order",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["post"], "route": "orders/{id:int}", "authLevel": "function"},
                {"type": "http", "direction": "out", "name": "res"},
                {"type": "serviceBus", "direction": "out", "name": "shipped", "queueName": "shipped", "dataType": "binary"},
                {"type": "serviceBus", "direction": "out", "name": "raw", "queueName": "raw"}
            ]}),
        )],
        json!({}),
    );
    app.set_behaviour(json!({"Order": {"outputs": {
        "res": {"statusCode": 201, "status": 418, "body": "created", "headers": {"X-Order": "5", "Content-Type": "text/plain"}},
        "shipped": ["a b", {"k": 1}],
        "raw": "test"
    }}}));
    let home = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(app.path(), home.path(), &[]).await;
    let r = dev
        .client
        .post(dev.url("/api/orders/5?x=1&x=2&code=secret"))
        .header("Content-Type", "application/json")
        .body(r#"{"id":1005,"quantity":2}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status().as_u16(),
        201,
        "statusCode wins, status is ignored"
    );
    assert_eq!(r.headers()["x-order"], "5");
    assert_eq!(r.text().await.expect("body"), "created");

    let inv = &app.invocations("Order")[0]["body"];
    let req = &inv["Data"]["req"];
    assert_eq!(req["Method"], "POST");
    assert_eq!(req["Query"]["x"], "1,2");
    assert_eq!(req["Params"]["id"], "5");
    assert_eq!(req["Headers"]["Content-Type"], json!(["application/json"]));
    assert_eq!(req["Body"], r#"{"id":1005,"quantity":2}"#);
    assert_eq!(inv["Metadata"]["x"], "\"1,2\"");
    assert!(
        inv["Metadata"].get("code").is_none(),
        "the function key is not copied into metadata"
    );
    assert_eq!(inv["Metadata"]["quantity"], "\"2\"");
    assert_eq!(
        inv["Metadata"]["id"], "\"1005\"",
        "a hoisted body property overwrites the route value"
    );

    let bus = LocalBus::new(home.path().join("bus"));
    let shipped: Vec<String> = bus
        .active("shipped")
        .expect("shipped")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        shipped,
        ["a b", "{\n  \"k\": 1\n}"],
        "one message per array element, objects pretty-printed"
    );
    let raw: Vec<String> = bus
        .active("raw")
        .expect("raw")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        raw,
        ["System.Byte[]"],
        "without dataType binary the host base64-decodes text"
    );

    let missing = dev
        .client
        .get(dev.url("/api/orders/5"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        missing.status().as_u16(),
        404,
        "GET is not an allowed method"
    );
}

#[tokio::test]
async fn the_dev_host_runs_the_real_handler_for_the_repository_app() {
    let home = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(&common::repo(), home.path(), &[]).await;
    let r = dev
        .client
        .get(dev.url("/api/status/health"))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["service"], "fthub");
    assert_eq!(body["functions"].as_array().expect("functions").len(), 13);

    let blob = home.path().join("storage/datasets/acme/train.jsonl");
    std::fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
    std::fs::write(&blob, b"{\"messages\":[]}\n").expect("drop");
    let receipts = home
        .path()
        .join("storage/azure-webjobs-hosts/blobreceipts/fthub-local/Host.Functions.DatasetArrived");
    let complete = || {
        common::files_under(&receipts).iter().any(|p| {
            p.ends_with("datasets/acme/train.jsonl")
                && std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .is_some_and(|v| v["Complete"] == true)
        })
    };
    assert!(
        eventually(WAIT, complete).await,
        "the handler accepted the BlobCreated event"
    );
}

#[tokio::test]
async fn a_failing_timer_with_a_retry_policy_is_retried_with_its_retry_context() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = RecorderApp::new(
        &[(
            "Nightly",
            json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 0 0 1 1 *", "runOnStartup": true}],
                   "retry": {"strategy": "fixedDelay", "maxRetryCount": 2, "delayInterval": "00:00:00.100"}}),
        )],
        json!({}),
    );
    app.set_behaviour(json!({"Nightly": {"status": 500}}));
    let home = tempfile::tempdir().expect("tmp");
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    assert!(eventually(WAIT, || app.invocations("Nightly").len() == 3).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = app.invocations("Nightly");
    assert_eq!(
        runs.len(),
        3,
        "the first try and maxRetryCount retries, then no more"
    );
    let counts: Vec<Value> = runs
        .iter()
        .map(|r| r["body"]["Metadata"]["RetryContext"]["RetryCount"].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2)]);
    assert_eq!(
        runs[2]["body"]["Metadata"]["RetryContext"]["MaxRetryCount"],
        2
    );
}

#[tokio::test]
async fn http_in_and_out_functions_are_forwarded_raw_when_forwarding_is_on() {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let script = common::repo().join("tests/support/recording_handler.py");
    let app = RecorderApp::new(
        &[(
            "Hello",
            json!({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["post"], "route": "hello"},
                                {"type": "http", "direction": "out", "name": "res"}]}),
        )],
        json!({"customHandler": {"description": {"defaultExecutablePath": "python3", "arguments": [script]}, "enableForwardingHttpRequest": true}}),
    );
    let home = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(app.path(), home.path(), &[]).await;
    let r = dev
        .client
        .post(dev.url("/api/hello?x=1"))
        .json(&json!({"a": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert!(
        body.get("Outputs").is_some(),
        "the handler's own answer comes back unchanged: {body}"
    );
    let forwarded = app.invocations("api/hello?x=1");
    assert_eq!(
        forwarded.len(),
        1,
        "the request went to the handler at its original path"
    );
    assert_eq!(
        forwarded[0]["body"],
        json!({"a": 1}),
        "the raw body, not an envelope"
    );
    let headers = forwarded[0]["headers"].as_object().expect("headers");
    assert!(
        headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("X-Azure-Functions-InvocationId"))
    );
}

#[tokio::test]
async fn a_dead_lettered_message_reaches_the_function_bound_to_the_dead_letter_subqueue_and_replays()
 {
    if !common::external("python3 (the independent handler)") {
        return;
    }
    let app = RecorderApp::new(
        &[
            (
                "Work",
                json!({"bindings": [{"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "work", "connection": "SB"}]}),
            ),
            (
                "WorkDeadLetters",
                json!({"bindings": [{"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "work/$DeadLetterQueue", "connection": "SB"}]}),
            ),
        ],
        json!({}),
    );
    app.set_behaviour(json!({"Work": {"status": 500}}));
    let home = tempfile::tempdir().expect("tmp");
    let _dev = Dev::start(app.path(), home.path(), &[]).await;
    let bus = LocalBus::new(home.path().join("bus"));
    bus.send_to_queue(
        "work",
        OutgoingMessage {
            body: r#"{"run_id":"r-1"}"#.into(),
            message_id: Some("m-dl".into()),
            ..Default::default()
        },
    )
    .expect("send");
    assert!(eventually(WAIT, || app.invocations("WorkDeadLetters").len() == 1).await);
    let dl = &app.invocations("WorkDeadLetters")[0]["body"];
    assert_eq!(undouble(&dl["Data"]["msg"]), r#"{"run_id":"r-1"}"#);
    assert_eq!(undouble(&dl["Metadata"]["MessageId"]), "m-dl");
    let props = &dl["Metadata"]["ApplicationProperties"];
    assert_eq!(props["DeadLetterReason"], "MaxDeliveryCountExceeded");
    assert!(
        props["DeadLetterErrorDescription"]
            .as_str()
            .is_some_and(|d| d.contains("delivered 10 times")),
        "{props}"
    );
    assert!(
        eventually(WAIT, || bus
            .dead_letters("work")
            .is_ok_and(|d| d.is_empty()))
        .await,
        "the recorder completed it"
    );
}

#[tokio::test]
async fn fthub_deadletters_lists_what_service_bus_gave_up_on_and_replays_it_as_a_new_message() {
    let home = tempfile::tempdir().expect("tmp");
    let bus = LocalBus::new(home.path().join("bus"));
    bus.send_to_queue(
        "training-completed",
        OutgoingMessage {
            body: r#"{"run_id":"acme-s1-0123abcd"}"#.into(),
            ..Default::default()
        },
    )
    .expect("send");
    while let Some(m) = bus
        .receive("training-completed", chrono::Duration::seconds(30), 2)
        .expect("rx")
    {
        bus.abandon("training-completed", &m, 2, "the Hub answered 503")
            .expect("abandon");
    }
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::fthub())
            .args(args)
            .arg("--home")
            .arg(home.path())
            .output()
            .expect("fthub");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed: Value =
        serde_json::from_str(&cli(&["deadletters", "list", "--json"])).expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["queue"], "training-completed");
    assert_eq!(listed[0]["run_id"], "acme-s1-0123abcd");
    assert_eq!(listed[0]["reason"], "MaxDeliveryCountExceeded");
    assert!(
        listed[0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("503")),
        "{listed:?}"
    );
    let text = cli(&["deadletters", "list"]);
    assert!(text.contains("acme-s1-0123abcd"), "{text}");
    let replayed = cli(&["deadletters", "replay", "--queue", "training-completed"]);
    assert!(replayed.contains("replayed as"), "{replayed}");
    assert!(
        bus.dead_letters("training-completed")
            .expect("dlq")
            .is_empty()
    );
    let back = bus.active("training-completed").expect("active");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, r#"{"run_id":"acme-s1-0123abcd"}"#);
    assert_eq!(back[0].delivery_count, 0, "a fresh delivery count");
    assert!(
        !back[0]
            .application_properties
            .contains_key("DeadLetterReason")
    );
}

// Multi-threaded: the emulator runs in this process while the CLI call blocks a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fthub_runs_lists_cancels_and_refuses_to_retry_through_the_apps_api() {
    use fthub::local::emulator::world::Timings;
    let t = Timings {
        file_processing_ms: 50,
        job_queue_ms: 50,
        // Long enough that the run is still training when it is cancelled.
        job_training_ms: 120_000,
        deployment_ms: 50,
        ..Timings::default()
    };
    let emulator = fthub::local::emulator::spawn(
        0,
        fthub::local::emulator::Emulator::new(fthub::local::emulator::builtin_accounts(), t),
    )
    .await
    .expect("emulator");
    let home = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(&common::repo(), home.path(), &["--emulator-url", &emulator]).await;
    let url = dev.url("");
    let cli = |args: &[&str]| {
        std::process::Command::new(common::fthub())
            .args(args)
            .env_remove("FTHUB_FUNCTION_KEY")
            .output()
            .expect("fthub")
    };
    let home_arg = home.path().to_str().expect("utf-8");
    let out = cli(&[
        "submit",
        common::repo()
            .join("samples/classification")
            .to_str()
            .expect("utf-8"),
        "--project",
        "ops",
        "--submission",
        "s1",
        "--home",
        home_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_of = || -> Option<Value> {
        let dir = home.path().join("storage/state/runs");
        let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
    };
    assert!(
        eventually(Duration::from_secs(60), || run_of()
            .is_some_and(|r| r["stage"] == "training"))
        .await,
        "{:?}",
        run_of()
    );
    let id = run_of().expect("run")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let listed = cli(&[
        "runs", "list", "--json", "--url", &url, "--stage", "training",
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let v: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(v["runs"][0]["id"], id.as_str());
    let none = cli(&["runs", "list", "--json", "--url", &url, "--stage", "prod"]);
    let v: Value = serde_json::from_slice(&none.stdout).expect("json");
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(0));
    let bad = cli(&["runs", "list", "--url", &url, "--stage", "staging"]);
    assert!(!bad.status.success(), "an unknown stage is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("staging"));

    let cancel = cli(&[
        "runs",
        "cancel",
        &id,
        "--url",
        &url,
        "--actor",
        "ops-lead",
        "--reason",
        "wrong data",
    ]);
    assert!(
        cancel.status.success(),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    let run = run_of().expect("run");
    assert_eq!(run["stage"], "cancelled");
    let last = run["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("history");
    assert_eq!(last["actor"], "ops-lead");
    assert!(
        last["detail"]
            .as_str()
            .is_some_and(|d| d.contains("wrong data"))
    );
    let job = run["job_id"].as_str().expect("job");
    let log = common::emulator_requests(&emulator).await;
    assert!(
        log.iter().any(|r| r["method"] == "POST"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("/fine_tuning/jobs/{job}/cancel")))
            && r["status"].as_u64().is_some_and(|s| s < 300)),
        "the Hub job was cancelled"
    );

    let retry = cli(&["runs", "retry", &id, "--url", &url]);
    assert!(!retry.status.success(), "a cancelled run owes no step");
    assert!(
        String::from_utf8_lossy(&retry.stderr).contains("cancelled"),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_recorder_consumed_is_kept_in_the_book_listed_and_replayed_once() {
    let home = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(&common::repo(), home.path(), &[]).await;
    let bus = LocalBus::new(home.path().join("bus"));
    bus.send_to_queue(
        "evaluation-completed",
        OutgoingMessage {
            body: r#"{"type":"evaluation.completed","run_id":"ghost-s1-0123abcd","passed":true}"#
                .into(),
            message_id: Some("m-ghost".into()),
            ..Default::default()
        },
    )
    .expect("send");
    // Service Bus gives up on it (as after ten failed deliveries) while the host runs.
    while let Some(m) = bus
        .receive("evaluation-completed", chrono::Duration::seconds(30), 2)
        .expect("rx")
    {
        bus.abandon("evaluation-completed", &m, 2, "storage answered 503")
            .expect("abandon");
    }
    let book = home
        .path()
        .join("storage/audit/deadletters/evaluation-completed");
    assert!(
        eventually(WAIT, || std::fs::read_dir(&book)
            .is_ok_and(|d| d.count() == 1))
        .await,
        "the recorder wrote the book"
    );
    assert!(
        eventually(WAIT, || bus
            .dead_letters("evaluation-completed")
            .is_ok_and(|d| d.is_empty()))
        .await,
        "and completed the subqueue's message"
    );
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::fthub())
            .args(args)
            .arg("--home")
            .arg(home.path())
            .output()
            .expect("fthub");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed: Value =
        serde_json::from_str(&cli(&["deadletters", "list", "--json"])).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["where"], "book");
    assert_eq!(listed[0]["run_id"], "ghost-s1-0123abcd");
    assert_eq!(listed[0]["reason"], "MaxDeliveryCountExceeded");
    assert!(
        listed[0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("503"))
    );
    let seq = listed[0]["sequence"]
        .as_i64()
        .expect("sequence")
        .to_string();
    let out = cli(&["deadletters", "replay", "--as", "ops"]);
    assert!(out.contains("→ replayed"), "{out}");
    // Replayed once: a second replay of "everything" leaves it alone; naming it sends again.
    let again = cli(&["deadletters", "replay"]);
    assert!(again.contains("nothing to replay"), "{again}");
    let named = cli(&["deadletters", "replay", &seq, "--as", "ops"]);
    assert!(named.contains("→ replayed"), "{named}");
    let listed: Value =
        serde_json::from_str(&cli(&["deadletters", "list", "--json"])).expect("json");
    let replays = listed[0]["replays"].as_array().expect("replays");
    assert_eq!(replays.len(), 2);
    assert_eq!(replays[0]["by"], "ops");
    drop(dev);
}
