use super::*;

const TRAIN: &str = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n";

fn world() -> World {
    let t = Timings {
        file_processing_ms: 0,
        job_queue_ms: 0,
        job_training_ms: 0,
        deployment_ms: 0,
        ..Timings::default()
    };
    World::new(crate::tests_support::accounts(), t, 1)
}

fn trained(w: &mut World) -> String {
    let f = w
        .add_file("hub", "t.jsonl", "fine-tune", TRAIN.as_bytes().to_vec())
        .expect("file");
    let j = w
        .create_job(
            "hub",
            &json!({"model": "gpt-4.1-mini-2025-04-14", "training_file": f["id"]}),
            "2024-10-21",
        )
        .expect("job");
    w.advance(Duration::seconds(1));
    w.advance(Duration::seconds(1));
    let id = j["id"].as_str().expect("id").to_owned();
    w.job_json("hub", &id).expect("job")["fine_tuned_model"]
        .as_str()
        .expect("trained")
        .to_owned()
}

fn deploy_body(model: &str, sku: &str, source: Option<(&str, &str)>) -> Value {
    let mut m = json!({"format": "OpenAI", "name": model, "version": "1"});
    if let Some((k, v)) = source {
        m[k] = json!(v);
    }
    json!({"sku": {"name": sku, "capacity": 1}, "properties": {"model": m}})
}

#[test]
fn developer_tier_deployments_expire_after_a_day_whatever_the_traffic() {
    let mut w = world();
    let model = trained(&mut w);
    w.put_deployment(
        "hub",
        "dev",
        &deploy_body(&model, "developertier", None),
        &[],
    )
    .expect("deploy");
    w.advance(Duration::hours(23));
    assert!(w.deployment_json("hub", "dev").is_some());
    w.advance(Duration::hours(2));
    assert!(w.deployment_json("hub", "dev").is_none());
    assert!(w.expired[0].2.contains("24 hours"));
}

#[test]
fn a_cross_tenant_source_must_use_source_account_with_an_auxiliary_token() {
    let mut w = world();
    let model = trained(&mut w);
    let hub_id = w.accounts["hub"].config.resource_id();
    let by_source = w.put_deployment(
        "prod-eastus2",
        "d",
        &deploy_body(&model, "GlobalStandard", Some(("source", &hub_id))),
        &[None],
    );
    assert_eq!(by_source.expect_err("other tenant").status, 403);
    let no_aux = w.put_deployment(
        "prod-eastus2",
        "d",
        &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
        &[],
    );
    assert_eq!(no_aux.expect_err("no auxiliary token").status, 401);
    let wrong_aux = w.put_deployment(
        "prod-eastus2",
        "d",
        &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
        &[Some("fabrikam".into())],
    );
    assert_eq!(
        wrong_aux
            .expect_err("the destination's tenant in the auxiliary header")
            .code,
        "InvalidAuthenticationTokenTenant"
    );
    w.put_deployment(
        "prod-eastus2",
        "d",
        &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
        &[Some("contoso".into())],
    )
    .expect("with the source tenant's auxiliary token");
    let unknown = w.put_deployment(
        "dev-eastus2",
        "x",
        &deploy_body("gpt-4o.ft-nothere", "Standard", Some(("source", &hub_id))),
        &[],
    );
    assert_eq!(
        unknown.expect_err("model must exist in the named hub").code,
        "DeploymentModelNotFound"
    );
}

#[test]
fn a_deployment_azure_does_not_offer_in_the_region_is_refused() {
    let mut w = world();
    let model = trained(&mut w);
    let hub_id = w.accounts["hub"].config.resource_id();
    let standard = w.put_deployment(
        "dev-eastus2",
        "d",
        &deploy_body(&model, "Standard", Some(("source", &hub_id))),
        &[],
    );
    let e = standard.expect_err("regional Standard is not offered in eastus2");
    assert_eq!((e.status, e.code), (400, "InvalidResourceProperties"));
    assert!(
        e.message.contains("northcentralus, swedencentral"),
        "{}",
        e.message
    );
    w.put_deployment(
        "dev-swedencentral",
        "d",
        &deploy_body(&model, "Standard", Some(("source", &hub_id))),
        &[],
    )
    .expect("offered in swedencentral");
}

#[test]
fn one_job_runs_at_a_time_and_at_most_twenty_queue() {
    let mut w = world();
    w.timings.job_training_ms = 60_000;
    let f = w
        .add_file("hub", "t.jsonl", "fine-tune", TRAIN.as_bytes().to_vec())
        .expect("file");
    for _ in 0..21 {
        w.create_job(
            "hub",
            &json!({"model": "gpt-4o", "training_file": f["id"]}),
            "2024-10-21",
        )
        .expect("job");
        w.tick();
    }
    let running = w.accounts["hub"]
        .jobs
        .iter()
        .filter(|j| j.status == "running")
        .count();
    assert_eq!(running, 1);
    assert_eq!(
        w.create_job(
            "hub",
            &json!({"model": "gpt-4o", "training_file": f["id"]}),
            "2024-10-21"
        )
        .expect_err("queue full")
        .status,
        429
    );
}
