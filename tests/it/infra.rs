//! Infrastructure and code agree: every queue, topic, container, app setting and role the
//! code uses is declared in infra/, and infra declares nothing the code does not use.

use std::collections::BTreeSet;

use crate::common;
use std::path::PathBuf;

use serde_json::Value;

fn repo() -> PathBuf {
    crate::common::repo()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The quoted items of a Bicep array introduced by `header` (e.g. `param queues array =`).
fn bicep_array(text: &str, header: &str) -> BTreeSet<String> {
    let start = text.find(header).unwrap_or_else(|| panic!("no {header:?}")) + header.len();
    let open = start + text[start..].find('[').expect("[");
    let close = open + text[open..].find(']').expect("]");
    text[open + 1..close]
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

struct Bindings {
    trigger_queues: BTreeSet<String>,
    output_queues: BTreeSet<String>,
    output_topics: BTreeSet<String>,
    connections: BTreeSet<String>,
}

fn bindings() -> Bindings {
    let mut b = Bindings {
        trigger_queues: BTreeSet::new(),
        output_queues: BTreeSet::new(),
        output_topics: BTreeSet::new(),
        connections: BTreeSet::new(),
    };
    for entry in std::fs::read_dir(repo().join("functions")).expect("functions/") {
        let fj: Value = serde_json::from_str(
            &std::fs::read_to_string(entry.expect("entry").path().join("function.json"))
                .expect("read"),
        )
        .expect("json");
        for binding in fj["bindings"].as_array().expect("bindings") {
            let s = |k: &str| binding[k].as_str().map(str::to_owned);
            if let Some(c) = s("connection") {
                b.connections.insert(c);
            }
            match (s("type").as_deref(), s("queueName"), s("topicName")) {
                (Some("serviceBusTrigger"), Some(q), _) => {
                    // A dead-letter subqueue is part of its queue: the queue's declaration
                    // and its receiver role cover it.
                    let q = q.strip_suffix("/$DeadLetterQueue").unwrap_or(&q).to_owned();
                    b.trigger_queues.insert(q);
                }
                (Some("serviceBus"), Some(q), _) => {
                    b.output_queues.insert(q);
                }
                (Some("serviceBus"), None, Some(t)) => {
                    b.output_topics.insert(t);
                }
                _ => {}
            }
        }
    }
    b
}

#[test]
fn every_queue_and_topic_the_functions_use_is_declared_and_nothing_else() {
    let b = bindings();
    let bus = read("infra/modules/servicebus.bicep");
    let declared_queues = bicep_array(&bus, "param queues array =");
    let used: BTreeSet<String> = b.trigger_queues.union(&b.output_queues).cloned().collect();
    assert_eq!(declared_queues, used);
    assert_eq!(bicep_array(&bus, "param topics array ="), b.output_topics);
    assert!(bus.contains("disableLocalAuth: true"), "Entra only");
}

#[test]
fn the_function_identity_receives_from_its_triggers_and_sends_to_its_outputs_only() {
    let b = bindings();
    let roles = read("infra/modules/roles.bicep");
    assert_eq!(bicep_array(&roles, "var receiveQueues ="), b.trigger_queues);
    assert_eq!(bicep_array(&roles, "var sendQueues ="), b.output_queues);
    for topic in &b.output_topics {
        assert!(
            roles.contains(&format!("name: '{topic}'")),
            "sender role on topic {topic}"
        );
    }
    for role in [
        "blobDataContributor",
        "serviceBusReceiver",
        "serviceBusSender",
        "openAiContributor",
    ] {
        assert!(
            roles.contains(&format!("roles.{role})")),
            "function identity role {role}"
        );
    }
    // Approvers and data scientists get one narrow role each.
    assert!(roles.contains("scope: approvals"));
    assert!(roles.contains("scope: datasetsContainer"));
    // Deploying to a Spoke needs the same role there.
    assert!(read("infra/spoke.bicep").contains("a001fd3d-188f-4b5d-821b-7da978bf7442"));
}

#[test]
fn the_containers_the_code_uses_are_declared_with_only_platform_extras() {
    let main = read("infra/main.bicep");
    let declared = bicep_array(&main, "containers:");
    let code: BTreeSet<String> = fthub::app::settings::CONTAINERS
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    // `deployments` holds the Flex Consumption package; `deadletters` Event Grid's undeliverable events.
    let platform: BTreeSet<String> = ["deployments", "deadletters"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(declared, code.union(&platform).cloned().collect());
    assert!(
        read("infra/subscription.bicep").contains("deadLetterContainer string = 'deadletters'")
    );
}

#[test]
fn app_settings_are_exactly_the_hosts_connections_and_what_the_handler_reads() {
    let app = read("infra/modules/functionapp.bicep");
    let block = &app[app.find("appSettings: [").expect("appSettings")..];
    let block = &block[..block.find("\n      ]").expect("end of appSettings")];
    let declared: BTreeSet<String> = block
        .split("{ name: '")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .map(str::to_owned)
        .collect();
    let mut expected: BTreeSet<String> = fthub::app::settings::AZURE_SETTINGS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for conn in bindings()
        .connections
        .into_iter()
        .chain(["AzureWebJobsStorage".to_owned()])
    {
        let suffix = if conn == "AzureWebJobsStorage" {
            "accountName"
        } else {
            "fullyQualifiedNamespace"
        };
        expected.insert(format!("{conn}__{suffix}"));
        expected.insert(format!("{conn}__credential"));
    }
    expected.insert("APPLICATIONINSIGHTS_CONNECTION_STRING".into());
    expected.insert("APPLICATIONINSIGHTS_AUTHENTICATION_STRING".into());
    assert_eq!(declared, expected);
    assert!(
        app.contains("runtime: { name: 'custom'"),
        "custom handler runtime"
    );
}

#[test]
fn the_event_grid_subscription_matches_the_local_one() {
    let local: Value = serde_json::from_str(&read("eventgrid.json")).expect("eventgrid.json");
    let sub = &local["subscriptions"][0];
    let grid = read("infra/subscription.bicep");
    assert!(grid.contains(&format!(
        "/functions/{}",
        sub["function"].as_str().expect("function")
    )));
    assert!(grid.contains(&format!(
        "subjectBeginsWith: '{}'",
        sub["subjectBeginsWith"].as_str().expect("prefix")
    )));
    assert!(grid.contains("'Microsoft.Storage.BlobCreated'"));
}

#[test]
fn the_event_grid_subscription_is_created_after_the_code_package_not_with_the_infrastructure() {
    // Event Grid validates an AzureFunction endpoint at creation: subscribing in the
    // infrastructure step, before the code exists, fails a fresh estate's first deployment.
    for f in ["infra/main.bicep", "infra/modules/eventgrid.bicep"] {
        assert!(
            !read(f).contains("eventSubscriptions"),
            "{f} subscribes too early"
        );
    }
    assert!(!read("infra/main.bicep").contains("subscription.bicep"));
    let workflow = read(".github/workflows/deploy.yml");
    let code = workflow
        .find("Azure/functions-action")
        .expect("code deployment");
    let wait = workflow
        .find("az functionapp function show")
        .expect("waits for the function");
    let subscribe = workflow
        .find("infra/subscription.bicep")
        .expect("subscription deployment");
    assert!(
        code < wait && wait < subscribe,
        "code, then wait, then subscribe"
    );
    let runbook = read("docs/runbook.md");
    let (pkg, sub) = (
        runbook
            .find("config-zip")
            .expect("the runbook deploys the package"),
        runbook
            .find("-f infra/subscription.bicep")
            .expect("the runbook subscribes"),
    );
    assert!(pkg < sub, "the runbook subscribes after deploying the code");
}

#[test]
fn every_environment_has_two_regions_and_the_generated_topology_follows_the_parameters() {
    if !common::external("python3 (the infrastructure tools)") {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/topology.py"))
        .args(["--prefix", "acme"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let topology: Value = serde_json::from_slice(&out.stdout).expect("topology JSON");
    for env in ["dev", "test", "prod"] {
        let params = read(&format!("infra/environments/{env}.bicepparam"));
        let regions = bicep_array(&params, "param regions =");
        assert!(regions.len() >= 2, "{env}: {regions:?}");
        let spokes = topology["environments"][env]["spokes"]
            .as_array()
            .expect("spokes");
        let got: BTreeSet<String> = spokes
            .iter()
            .map(|s| s["region"].as_str().expect("region").to_owned())
            .collect();
        assert_eq!(got, regions, "{env}");
        for s in spokes {
            let name = format!("acme-{env}-{}", s["region"].as_str().expect("region"));
            assert_eq!(s["name"], Value::String(name.clone()));
            assert!(s["resource_id"].as_str().expect("id").ends_with(&format!("/resourceGroups/rg-fthub-{env}/providers/Microsoft.CognitiveServices/accounts/{name}")));
        }
    }
    assert!(
        read("infra/spoke.bicep").contains("name: '${prefix}-${environment}-${region}'"),
        "the templates use the same naming rule"
    );
    assert_eq!(topology["hub"]["name"], "acme-hub");
}
