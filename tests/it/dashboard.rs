//! The dashboard in a real browser. A story runs on `fthub dev` against the emulator: two
//! projects reach Dev and Test, a forged Prod approval is refused, support-routing v1 goes
//! to Prod, v2 follows it there and is rolled back, and a message about claims-triage is
//! dead-lettered. Headless Chromium (Debian's `chromium`) then renders every page of the
//! Status function's dashboard: each is checked through its DOM, measured for horizontal
//! overflow at 420 px, and photographed (into `docs/img/` with
//! `FTHUB_UPDATE_SCREENSHOTS=1`). Runs with `FTHUB_TEST_EXTERNAL=1` (`scripts/test` sets it).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Dev;
use fthub::adapters::local::bus::{LocalBus, OutgoingMessage};
use fthub::domain::approval::Decision;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(args: &[&str], target: &str, profile: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (scripts/test does)"
    );
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(target)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM after Chromium loaded and rendered the page.
fn dom(url: &str, profile: &Path) -> String {
    chromium(&["--dump-dom"], url, profile)
}

/// A screenshot `width` wide and `height` tall into `target/screenshots/{name}`, or into
/// `docs/img/{name}` with `FTHUB_UPDATE_SCREENSHOTS=1` (so a test run leaves the documented
/// pictures alone unless asked to refresh them).
fn screenshot(url: &str, name: &str, (width, height): (u32, u32), extra: &[&str], profile: &Path) {
    let dir = if std::env::var("FTHUB_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        common::repo().join("docs/img")
    } else {
        common::repo().join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    let mut args = vec![
        format!("--screenshot={}", file.display()),
        format!("--window-size={width},{height}"),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    chromium(&args, url, profile);
    let png = std::fs::read(&file).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name} is a real picture"
    );
}

/// Each page rendered 420 px wide: `(page, document width, viewport width)`. The pages use
/// no script, so the measuring is done by a test page that holds them in 420 px frames (as
/// files, so the test page may read their layout).
fn widths_at_420(pages: &[(&str, String)], dir: &Path, profile: &Path) -> Vec<(String, u32, u32)> {
    let mut frames = String::new();
    for (i, (_, html)) in pages.iter().enumerate() {
        std::fs::write(dir.join(format!("page{i}.html")), html).expect("page");
        frames.push_str(&format!(
            "<iframe src=\"page{i}.html\" style=\"width:420px;height:800px;border:0\"></iframe>"
        ));
    }
    let harness = dir.join("harness.html");
    std::fs::write(
        &harness,
        format!(
            "<!doctype html><html><body>{frames}<script>\
             addEventListener('load', () => {{ const out = [...document.querySelectorAll('iframe')].map(f => {{\
             const d = f.contentDocument.documentElement; return d.scrollWidth + ' ' + d.clientWidth; }});\
             const p = document.createElement('pre'); p.id = 'widths'; p.textContent = out.join(';');\
             document.body.appendChild(p); }});</script></body></html>"
        ),
    )
    .expect("harness");
    let out = chromium(
        &["--allow-file-access-from-files", "--dump-dom"],
        &format!("file://{}", harness.display()),
        profile,
    );
    let widths = out
        .split("<pre id=\"widths\">")
        .nth(1)
        .and_then(|w| w.split("</pre>").next())
        .unwrap_or_else(|| panic!("the harness measured nothing: {out}"));
    pages
        .iter()
        .zip(widths.split(';'))
        .map(|((name, _), w)| {
            let mut n = w.split(' ').filter_map(|x| x.parse::<u32>().ok());
            (
                (*name).to_owned(),
                n.next().unwrap_or(u32::MAX),
                n.next().unwrap_or(0),
            )
        })
        .collect()
}

/// The part of `page` from `marker` to the end of its element (`end`).
fn part<'a>(page: &'a str, marker: &str, end: &str) -> &'a str {
    page.split(marker)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {marker} in the page"))
}

struct Story {
    dev: Option<Dev>,
    emulator: String,
    home: tempfile::TempDir,
}

impl Story {
    async fn start() -> Self {
        let timings = Timings {
            file_processing_ms: 20,
            job_queue_ms: 20,
            job_training_ms: 150,
            deployment_ms: 20,
            ..Timings::default()
        };
        let emulator = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), timings))
            .await
            .expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let mut s = Self {
            dev: None,
            emulator,
            home,
        };
        s.start_dev().await;
        s
    }

    async fn start_dev(&mut self) {
        self.dev = Some(
            Dev::start_with_env(
                &common::repo(),
                self.home.path(),
                &["--emulator-url", &self.emulator],
                &[("FTHUB_RECONCILE_GRACE_SECONDS", "2")],
            )
            .await,
        );
    }

    fn dev(&self) -> &Dev {
        self.dev.as_ref().expect("fthub dev runs")
    }

    fn url(&self, path: &str) -> String {
        self.dev().url(path)
    }

    /// Drops a sample as a data scientist does: data files, then the manifest.
    async fn drop(&self, project: &str, submission: &str, sample: &str) {
        common::drop_sample(self.home.path(), project, submission, sample).await;
    }

    fn run_of(&self, project: &str, submission: &str) -> Option<Value> {
        std::fs::read_dir(self.home.path().join("storage/state/runs"))
            .ok()?
            .flatten()
            .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
            .find(|r| r["project"] == project && r["submission"] == submission)
    }

    fn id(&self, project: &str, submission: &str) -> String {
        self.run_of(project, submission).expect("run")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// The run's status in `env` (`healthy`, `rolled_back`, …).
    fn status(&self, project: &str, submission: &str, env: &str) -> String {
        self.run_of(project, submission)
            .and_then(|r| r["environments"][env]["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Ticks the reconciler until `done` holds.
    async fn until(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "timed out waiting for {what}"
            );
            let r = self
                .dev()
                .client
                .post(self.url("/admin/functions/TrainingMonitor"))
                .json(&json!({"input": ""}))
                .send()
                .await
                .expect("admin");
            assert_eq!(r.status().as_u16(), 202);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Signs an approval with `key` (a file in `samples/keys/`) and publishes it on the
    /// approvals queue with what `fthub approve --no-wait` sends.
    async fn sign(&self, run_id: &str, env: &str, approver: &str, key: &str, decision: Decision) {
        let publisher =
            fthub::commands::ops::Publisher::Local(LocalBus::new(self.home.path().join("bus")));
        fthub::commands::approve::sign_and_publish(
            &publisher,
            run_id,
            env,
            decision,
            approver,
            &common::repo().join(format!("samples/keys/{key}.key")),
            "dashboard story",
        )
        .await
        .expect("published");
    }

    /// `approver` approves (or rolls back) `submission` of `project` in `env` with their own
    /// key; returns once the run (or, for a rollback, `serving`) is healthy there.
    async fn approve(&self, project: &str, submission: &str, env: &str, decision: Decision) {
        let approver = if env == "prod" {
            "release-manager"
        } else {
            "quality-lead"
        };
        self.sign(
            &self.id(project, submission),
            env,
            approver,
            approver,
            decision,
        )
        .await;
        let what = format!("{project} {submission} {decision:?} in {env}");
        self.until(&what, |s| {
            let status = s.status(project, submission, env);
            match decision {
                Decision::Rollback => status == "rolled_back",
                _ => status == "healthy",
            }
        })
        .await;
    }

    /// Stops `fthub dev`, dead-letters a `training-completed` message about `run_id` the
    /// way Service Bus does after its last delivery, and starts `fthub dev` again, whose
    /// recorder books it and marks the run stalled.
    async fn dead_letter(&mut self, run_id: &str) {
        self.dev = None;
        let bus = LocalBus::new(self.home.path().join("bus"));
        bus.send_to_queue(
            "training-completed",
            OutgoingMessage {
                body: json!({"run_id": run_id}).to_string(),
                ..Default::default()
            },
        )
        .expect("send");
        while let Some(m) = bus
            .receive("training-completed", chrono::Duration::seconds(30), 2)
            .expect("receive")
        {
            bus.abandon("training-completed", &m, 2, "the Hub answered 503")
                .expect("abandon");
        }
        self.start_dev().await;
    }
}

async fn html(story: &Story, path: &str) -> String {
    let r = story
        .dev()
        .client
        .get(story.url(path))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_lets_an_operator_act_and_fits_a_narrow_screen_in_chromium() {
    if !common::external("Chromium") {
        return;
    }
    let mut s = Story::start().await;
    let serving = |s: &Story, p: &str, sub: &str, env: &str| s.status(p, sub, env) == "healthy";

    s.drop("support-routing", "v1", "classification").await;
    s.drop("claims-triage", "v1", "triage").await;
    s.until("both projects in dev", |s| {
        serving(s, "support-routing", "v1", "dev") && serving(s, "claims-triage", "v1", "dev")
    })
    .await;
    let v1 = s.id("support-routing", "v1");
    let claims = s.id("claims-triage", "v1");
    s.approve("support-routing", "v1", "test", Decision::Approve)
        .await;
    s.approve("claims-triage", "v1", "test", Decision::Approve)
        .await;
    // Signed with another key in release-manager's name: refused, into the rejections trail.
    s.sign(
        &v1,
        "prod",
        "release-manager",
        "intruder",
        Decision::Approve,
    )
    .await;
    s.until("the forged approval's refusal", |s| {
        s.run_of("support-routing", "v1")
            .is_some_and(|r| r["history"].to_string().contains("approval_refused"))
    })
    .await;
    s.approve("support-routing", "v1", "prod", Decision::Approve)
        .await;

    // v2 follows v1 all the way to Prod, and Prod is rolled back to v1.
    s.drop("support-routing", "v2", "triage").await;
    s.until("v2 in dev", |s| serving(s, "support-routing", "v2", "dev"))
        .await;
    let v2 = s.id("support-routing", "v2");
    for env in ["test", "prod"] {
        s.approve("support-routing", "v2", env, Decision::Approve)
            .await;
    }
    s.approve("support-routing", "v2", "prod", Decision::Rollback)
        .await;
    assert!(serving(&s, "support-routing", "v1", "prod"), "v1 is back");
    s.dead_letter(&claims).await;
    s.until("claims-triage stalled by its dead letter", |s| {
        s.run_of("claims-triage", "v1")
            .is_some_and(|r| !r["stalled"].is_null())
    })
    .await;

    let profile = tempfile::tempdir().expect("profile");
    let profile = profile.path();
    let base = "/api/status/ui";
    let mut narrow: Vec<(&str, String)> = Vec::new();

    // Runs: what needs a person, and which run serves where after the rollback.
    let url = s.url(&format!("{base}/runs?code=demo-key"));
    let page = dom(&url, profile);
    for (card, n) in [
        ("pending-approvals", "1"),
        ("stalled-runs", "1"),
        ("dead-letters", "1"),
    ] {
        let tag = part(&page, &format!("<a class=\"card\" id=\"{card}\""), ">");
        assert!(
            tag.contains(&format!("data-count=\"{n}\"")),
            "{card} counts {n}: {tag}"
        );
    }
    let rejected = part(&page, "<a class=\"card\" id=\"rejections-today\"", ">");
    assert!(
        !rejected.contains("data-count=\"0\""),
        "the forged approval: {rejected}"
    );
    let row = |id: &str| part(&page, &format!("<tr data-run=\"{id}\">"), "</tr>").to_owned();
    assert!(row(&v1).contains("data-serves=\"prod\""), "v1 serves prod");
    assert!(!row(&v2).contains("data-serves=\"prod\""), "v2 does not");
    assert!(row(&v2).contains("data-rolled-back=\"prod\">rolled back in prod"));
    assert!(row(&v2).contains("data-serves=\"test\""));
    assert!(row(&claims).contains("badge bad\">stalled"));
    // The function key rides along on every link.
    for link in page.split("href=\"").skip(1) {
        let link = link.split('"').next().unwrap_or("");
        assert!(link.contains("code=demo-key"), "{link} keeps the key");
    }
    screenshot(&url, "runs.png", (1280, 760), &[], profile);
    screenshot(&url, "runs-narrow.png", (420, 1100), &[], profile);
    narrow.push(("runs", html(&s, &format!("{base}/runs")).await));

    // The restored run: it serves Prod, with the thresholds on its evaluation chart.
    let url = s.url(&format!("{base}/runs/{v1}"));
    let page = dom(&url, profile);
    let prod = part(&page, "<tr data-env=\"prod\">", "</tr>");
    assert!(
        prod.contains("data-serves=\"prod\">serves prod now"),
        "{prod}"
    );
    let dev = part(&page, "<tr data-env=\"dev\">", "</tr>");
    assert!(
        dev.contains("data-replaced=\"dev\"") && dev.contains(&v2),
        "{dev}"
    );
    let chart = part(&page, "<svg id=\"evaluation-chart\"", "</svg>");
    assert!(
        chart.contains("<line class=\"threshold-line threshold\" data-value=\"0.5\""),
        "the minimum score from the manifest: {chart}"
    );
    assert!(
        chart.contains("threshold-line needed"),
        "best baseline plus the gain"
    );
    for id in ["loss-chart", "accuracy-chart", "latency-chart"] {
        let svg = part(&page, &format!("<svg id=\"{id}\""), "</svg>");
        assert!(
            svg.contains("<polyline") || svg.contains("<rect"),
            "{id} has marks"
        );
        assert!(svg.contains("<g class=\"legend\">"), "{id} has its legend");
    }
    assert!(page.contains("quality-lead") && page.contains("release-manager"));
    screenshot(&url, "run.png", (1280, 2900), &[], profile);
    screenshot(
        &url,
        "run-dark.png",
        (1280, 2900),
        &["--force-dark-mode"],
        profile,
    );
    screenshot(&url, "run-narrow.png", (420, 2000), &[], profile);
    narrow.push(("run", html(&s, &format!("{base}/runs/{v1}")).await));

    // The rolled-back run names the run that serves Prod instead.
    let url = s.url(&format!("{base}/runs/{v2}"));
    let page = dom(&url, profile);
    let prod = part(&page, "<tr data-env=\"prod\">", "</tr>");
    assert!(
        prod.contains("data-rolled-back=\"prod\"") && prod.contains(&v1),
        "{prod}"
    );
    screenshot(&url, "run-rolled-back.png", (1280, 900), &[], profile);

    // Projects, and one project: what serves where, its releases with the rollback.
    let url = s.url(&format!("{base}/projects"));
    let page = dom(&url, profile);
    let support = part(&page, "<tr data-project=\"support-routing\">", "</tr>");
    assert!(
        support.contains(&v1) && support.contains("(rollback)"),
        "{support}"
    );
    screenshot(&url, "projects.png", (1280, 500), &[], profile);
    narrow.push(("projects", html(&s, &format!("{base}/projects")).await));
    let url = s.url(&format!("{base}/projects/support-routing"));
    let page = dom(&url, profile);
    let prod = part(
        &page,
        "<div class=\"card\" data-env=\"prod\">",
        "</div></div>",
    );
    assert!(prod.contains(&v1) && !prod.contains(&v2), "{prod}");
    let releases = part(&page, "aria-label=\"Releases\"", "</table>");
    assert!(releases.contains("rollback") && releases.contains("rolled_back"));
    for region in ["eastus2", "swedencentral"] {
        let cell = part(
            &page,
            &format!("data-env=\"prod\" data-region=\"{region}\""),
            "</article>",
        );
        assert!(cell.contains(&v1) && !cell.contains(&claims), "{cell}");
    }
    screenshot(&url, "project.png", (1280, 2000), &[], profile);
    screenshot(&url, "project-narrow.png", (420, 2400), &[], profile);
    narrow.push((
        "project",
        html(&s, &format!("{base}/projects/support-routing")).await,
    ));

    // Environments: every region of every environment, with what each project serves there.
    let url = s.url(&format!("{base}/environments"));
    let page = dom(&url, profile);
    for (env, region) in [
        ("dev", "eastus2"),
        ("dev", "swedencentral"),
        ("test", "northcentralus"),
        ("test", "swedencentral"),
        ("prod", "eastus2"),
        ("prod", "swedencentral"),
    ] {
        let cell = part(
            &page,
            &format!("<article class=\"cell\" data-env=\"{env}\" data-region=\"{region}\">"),
            "</article>",
        );
        let support = if env == "prod" { &v1 } else { &v2 };
        assert!(
            cell.contains(support.as_str()),
            "{env}/{region} serves {support}: {cell}"
        );
        assert_eq!(
            cell.contains(&claims),
            env != "prod",
            "{env}/{region}: {cell}"
        );
        assert!(cell.contains(".ft-") && cell.contains("badge ok"), "{cell}");
    }
    screenshot(&url, "environments.png", (1280, 1300), &[], profile);
    screenshot(&url, "environments-narrow.png", (420, 2400), &[], profile);
    narrow.push((
        "environments",
        html(&s, &format!("{base}/environments")).await,
    ));

    // Approvals: claims-triage waits for Prod, with the command its approver runs.
    let url = s.url(&format!("{base}/approvals"));
    let page = dom(&url, profile);
    let item = part(
        &page,
        &format!("<div class=\"item\" data-run=\"{claims}\" data-env=\"prod\">"),
        "</div>",
    );
    assert!(
        item.contains(&format!(
            "fthub approve {claims} --env prod --approver release-manager --key release-manager.key"
        )),
        "{item}"
    );
    assert!(
        !page.contains(&format!("data-run=\"{v2}\"")),
        "a rolled-back run waits for nothing"
    );
    screenshot(&url, "approvals.png", (1280, 600), &[], profile);
    screenshot(&url, "approvals-narrow.png", (420, 900), &[], profile);
    narrow.push(("approvals", html(&s, &format!("{base}/approvals")).await));

    // Stalled runs and the dead-letter book, each with the command that acts on it.
    let url = s.url(&format!("{base}/stalled"));
    let page = dom(&url, profile);
    let stalled = part(&page, &format!("<tr data-run=\"{claims}\">"), "</tr>");
    assert!(
        stalled.contains("dead_letter:training-completed"),
        "{stalled}"
    );
    assert!(stalled.contains(&format!("fthub runs retry {claims}")));
    let dead = part(&page, "<tr data-queue=\"training-completed\">", "</tr>");
    assert!(
        dead.contains("fthub deadletters replay") && dead.contains("503"),
        "{dead}"
    );
    screenshot(&url, "stalled.png", (1280, 800), &[], profile);
    narrow.push(("stalled", html(&s, &format!("{base}/stalled")).await));

    // The rejections trail has the forged approval.
    let url = s.url(&format!("{base}/rejections"));
    let page = dom(&url, profile);
    let row = part(&page, "<tr data-function=\"ApplyApproval\">", "</tr>");
    assert!(row.contains("approval_refused"), "{row}");
    screenshot(&url, "rejections.png", (1280, 600), &[], profile);
    narrow.push(("rejections", html(&s, &format!("{base}/rejections")).await));

    // The reports: the evaluation against its thresholds, the validation's token histogram.
    let url = s.url(&format!("{base}/reports/{v1}/evaluation.html"));
    let page = dom(&url, profile);
    assert!(part(&page, "<svg id=\"evaluation-chart\"", "</svg>").contains("threshold-line"));
    screenshot(&url, "evaluation-report.png", (1280, 1000), &[], profile);
    let url = s.url(&format!("{base}/reports/{v1}/validation.html"));
    let page = dom(&url, profile);
    let histogram = part(&page, "<svg id=\"token-histogram\"", "</svg>");
    let bins = part(histogram, "<g class=\"categories\">", "</g>")
        .matches("<text")
        .count();
    assert!(bins >= 2, "a histogram of several bins: {histogram}");
    screenshot(&url, "validation-report.png", (1280, 1100), &[], profile);
    narrow.push((
        "evaluation report",
        html(&s, &format!("{base}/reports/{v1}/evaluation.html")).await,
    ));

    // Nothing is wider than a 420 px screen: wide tables scroll in their own box.
    let dir = tempfile::tempdir().expect("pages");
    for (name, document, viewport) in widths_at_420(&narrow, dir.path(), profile) {
        assert!(viewport > 300, "{name} was measured ({viewport} px)");
        assert!(
            document <= viewport,
            "{name} is {document} px wide on a {viewport} px screen"
        );
    }

    // The browser's landing page is the runs page; JSON clients still get JSON.
    let landing = html(&s, "/api/status/").await;
    assert!(landing.contains(&v1) && landing.contains("<h1>Runs</h1>"));
    let health: Value = s
        .dev()
        .client
        .get(s.url("/api/status/"))
        .send()
        .await
        .expect("json")
        .json()
        .await
        .expect("json");
    assert_eq!(health["service"], "fthub");
}
