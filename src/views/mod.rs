//! Server-rendered HTML for people: the dashboard pages the `Status` function serves and
//! the HTML reports written beside the JSON ones. No JavaScript and no build step; one
//! stylesheet that follows the reader's light or dark preference; charts are inline SVG
//! from [`charts`]. Pure functions of the data: the callers read storage.

pub mod charts;
pub mod pages;
pub mod reports;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --bg: #ffffff; --fg: #111827; --muted: #4b5563; --line: #d1d5db;
  --card: #f9fafb; --ok: #166534; --ok-bg: #dcfce7; --warn: #854d0e; --warn-bg: #fef9c3;
  --bad: #991b1b; --bad-bg: #fee2e2; --info: #1e40af; --info-bg: #dbeafe; --link: #1d4ed8; }
@media (prefers-color-scheme: dark) { :root { --bg: #0b1220; --fg: #e5e7eb; --muted: #9ca3af;
  --line: #374151; --card: #111827; --ok: #bbf7d0; --ok-bg: #14532d; --warn: #fef08a; --warn-bg: #713f12;
  --bad: #fecaca; --bad-bg: #7f1d1d; --info: #bfdbfe; --info-bg: #1e3a8a; --link: #93c5fd; } }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; gap: 1.5rem; align-items: baseline; padding: .8rem 1.5rem; border-bottom: 1px solid var(--line); }
header strong { font-size: 1.1rem; }
nav a { margin-right: 1rem; }
main { padding: 1rem 1.5rem 3rem; max-width: 1200px; }
a { color: var(--link); }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .85em; font-weight: 600; }
.ok { color: var(--ok); background: var(--ok-bg); } .warn { color: var(--warn); background: var(--warn-bg); }
.bad { color: var(--bad); background: var(--bad-bg); } .info { color: var(--info); background: var(--info-bg); }
.muted { color: var(--muted); } .cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .7rem 1rem; min-width: 10rem; }
.card b { display: block; font-size: 1.3rem; }
.chart { max-width: 100%; height: auto; background: var(--card); border-radius: 8px; }
code { font-size: .9em; }
"#;

/// A whole page: `title`, navigation that keeps the function key (`code`) on every link,
/// and `body`.
pub fn page(title: &str, base: &str, body: &str) -> String {
    // A stored report (no base) stands alone: it may be opened from storage or a download.
    let nav = if base.is_empty() {
        String::new()
    } else {
        format!(
            "<nav aria-label=\"Main\"><a href=\"{}\">Runs</a><a href=\"{}\">Environments</a></nav>",
            escape(&link(base, "ui/runs")),
            escape(&link(base, "ui/environments"))
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · fthub</title><style>{STYLE}</style></head><body>\
         <header><strong>fthub</strong>{nav}</header>\
         <main><h1>{t}</h1>{body}</main></body></html>\n",
        t = escape(title),
    )
}

/// A link under the status route, carrying `?code=` when the page was opened with one.
pub fn link(base: &str, path: &str) -> String {
    match base.split_once('?') {
        Some((root, query)) => format!("{root}{path}?{query}"),
        None => format!("{base}{path}"),
    }
}

/// A coloured badge for a stage or a health.
pub fn badge(text: &str) -> String {
    let class = match text {
        "prod" | "test" | "dev" | "evaluated" | "healthy" | "restored" | "verified"
        | "accepted" | "passed" | "succeeded" => "ok",
        "rejected" | "evaluation_failed" | "failed" | "degraded" | "missing" | "refused" => "bad",
        "unmanaged" | "drift" | "stale" | "cancelled" => "warn",
        _ => "info",
    };
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// "3 h ago"-style age.
pub fn age(then: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_is_placed() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let p = page("<script>", "/api/status/", "");
        assert!(!p.contains("<script>") && p.contains("&lt;script&gt;"));
    }

    #[test]
    fn links_keep_the_function_key() {
        assert_eq!(
            link("/api/status/?code=abc", "ui/runs"),
            "/api/status/ui/runs?code=abc"
        );
        assert_eq!(link("/api/status/", "ui/runs"), "/api/status/ui/runs");
    }
}
