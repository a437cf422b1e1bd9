//! The dashboard in a real browser: the demo's story runs to Prod, `fthub dev` serves the
//! Status function's pages from the state it left, and headless Chromium (Debian's
//! `chromium`) renders them. The environment matrix must show the deployed version in every
//! region, the run page both training charts and the evaluation chart. Screenshots land in
//! `target/screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(args: &[&str], url: &str, profile: &Path) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (scripts/test does)"
    );
    Command::new(CHROMIUM)
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
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium")
}

/// The DOM after Chromium loaded and rendered the page.
fn dom(url: &str, profile: &Path) -> String {
    let out = chromium(&["--dump-dom"], url, profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(url: &str, name: &str, profile: &Path) -> PathBuf {
    let dir = common::repo().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    let out = chromium(
        &[
            &format!("--screenshot={}", file.display()),
            "--window-size=1360,1500",
        ],
        url,
        profile,
    );
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&file).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{name} is a real picture"
    );
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_environment_matrix_and_the_run_charts_in_chromium() {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(common::fthub())
        .args(["demo", "--training-seconds", "1", "--home"])
        .arg(home.path())
        .current_dir(common::repo())
        .env("FTHUB_LOG", "error")
        .output()
        .expect("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dev = common::Dev::start(&common::repo(), home.path(), &[]).await;
    let profile = tempfile::tempdir().expect("profile");
    let run_of = |project: &str| {
        std::fs::read_dir(home.path().join("storage/reports"))
            .expect("reports")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(project))
            .unwrap_or_else(|| panic!("a run of {project}"))
    };
    let run_id = run_of("support-routing");
    let second = run_of("claims-triage");

    // Environments: every (environment, region) cell shows the run (the version) and model.
    let url = dev.url("/api/status/ui/environments");
    let page = dom(&url, profile.path());
    assert!(page.contains("id=\"matrix\""), "{page}");
    for (env, region) in [
        ("dev", "eastus2"),
        ("dev", "swedencentral"),
        ("test", "northcentralus"),
        ("test", "swedencentral"),
        ("prod", "eastus2"),
        ("prod", "swedencentral"),
    ] {
        let marker = format!("data-env=\"{env}\" data-region=\"{region}\"");
        let cell = page
            .split(&marker)
            .nth(1)
            .and_then(|rest| rest.split("</td>").next())
            .unwrap_or_else(|| panic!("no cell for {env}/{region}"));
        assert!(
            cell.contains(&run_id),
            "{env}/{region} shows the deployed version: {cell}"
        );
        assert_eq!(
            cell.contains(&second),
            env != "prod",
            "{env}/{region} shows the second project where it serves: {cell}"
        );
        assert!(
            cell.contains(".ft-"),
            "{env}/{region} shows the fine-tuned model: {cell}"
        );
        assert!(
            cell.contains("badge ok"),
            "{env}/{region} is healthy: {cell}"
        );
    }
    screenshot(&url, "environments.png", profile.path());

    // A project: what serves where, its releases and its runs.
    let url = dev.url("/api/status/ui/projects/claims-triage");
    let page = dom(&url, profile.path());
    assert!(page.contains("Project claims-triage"), "{page}");
    assert!(
        page.contains(&second) && !page.contains(&run_id),
        "only its own runs"
    );
    assert!(page.contains("aria-label=\"Releases\""), "{page}");
    screenshot(&url, "project.png", profile.path());

    // The run: both training curves and the evaluation comparison, drawn as SVG.
    let url = dev.url(&format!("/api/status/ui/runs/{run_id}"));
    let page = dom(&url, profile.path());
    for chart in [
        "loss-chart",
        "accuracy-chart",
        "evaluation-chart",
        "latency-chart",
    ] {
        let svg = page
            .split(&format!("<svg id=\"{chart}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("{chart} missing from the run page"));
        assert!(
            svg.split("</svg>")
                .next()
                .is_some_and(|s| s.contains("<polyline") || s.contains("<rect")),
            "{chart} has marks"
        );
    }
    assert!(
        page.contains("quality-lead") && page.contains("release-manager"),
        "the timeline shows who approved"
    );
    screenshot(&url, "run.png", profile.path());

    // The runs list, the browser's landing page, and a stored HTML report.
    let landing = dev
        .client
        .get(dev.url("/api/status/"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("landing");
    assert!(
        landing.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert!(landing.text().await.expect("html").contains(&run_id));
    let page = dom(&dev.url("/api/status/ui/runs"), profile.path());
    assert!(page.contains(&run_id));
    let report = dev.url(&format!("/api/status/ui/reports/{run_id}/evaluation.html"));
    let page = dom(&report, profile.path());
    assert!(
        page.contains("<svg id=\"evaluation-chart\""),
        "the report embeds its chart"
    );
    screenshot(&report, "evaluation-report.png", profile.path());
    // JSON clients are unaffected.
    let health: serde_json::Value = dev
        .client
        .get(dev.url("/api/status/"))
        .send()
        .await
        .expect("json")
        .json()
        .await
        .expect("json");
    assert_eq!(health["service"], "fthub");
}
