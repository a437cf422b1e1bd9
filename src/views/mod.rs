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

const STYLE: &str = include_str!("style.css");

/// The dashboard's pages, in navigation order: (path under the status route, name).
const NAV: [(&str, &str); 6] = [
    ("ui/runs", "Runs"),
    ("ui/projects", "Projects"),
    ("ui/environments", "Environments"),
    ("ui/approvals", "Approvals"),
    ("ui/stalled", "Stalled"),
    ("ui/rejections", "Rejections"),
];

/// A whole page: `title`, navigation that keeps the function key (`code`) on every link,
/// and `body`.
pub fn page(title: &str, base: &str, body: &str) -> String {
    // A stored report (no base) stands alone: it may be opened from storage or a download.
    let nav = if base.is_empty() {
        String::new()
    } else {
        let links: String = NAV
            .iter()
            .map(|(path, name)| format!("<a href=\"{}\">{name}</a>", escape(&link(base, path))))
            .collect();
        format!("<nav aria-label=\"Main\">{links}</nav>")
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
/// `path` may carry a query of its own (`ui/rejections?day=…`).
pub fn link(base: &str, path: &str) -> String {
    match base.split_once('?') {
        Some((root, query)) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{root}{path}{sep}{query}")
        }
        None => format!("{base}{path}"),
    }
}

/// An `<a>` to a page under the status route.
pub fn anchor(base: &str, path: &str, text: &str) -> String {
    format!(
        "<a href=\"{}\">{}</a>",
        escape(&link(base, path)),
        escape(text)
    )
}

/// A table inside its own scrolling box, so a wide one never widens the page. `rows` is
/// markup; an empty `rows` shows `empty` instead.
pub fn table(label: &str, headers: &[&str], rows: &str, empty: &str) -> String {
    let head: String = headers
        .iter()
        .map(|h| format!("<th scope=\"col\">{}</th>", escape(h)))
        .collect();
    let body = if rows.is_empty() {
        format!(
            "<tr><td colspan=\"{}\" class=\"muted\">{empty}</td></tr>",
            headers.len().max(1)
        )
    } else {
        rows.to_owned()
    };
    format!(
        "<div class=\"scroll\"><table aria-label=\"{}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>",
        escape(label)
    )
}

/// A command to copy, as one block that wraps on a narrow screen.
pub fn command(text: &str) -> String {
    format!("<pre class=\"command\"><code>{}</code></pre>", escape(text))
}

/// A coloured badge for a stage or a health.
pub fn badge(text: &str) -> String {
    let class = match text {
        "prod" | "test" | "dev" | "evaluated" | "healthy" | "restored" | "verified"
        | "accepted" | "passed" | "succeeded" | "serving" => "ok",
        "rejected" | "evaluation_failed" | "training_failed" | "failed" | "degraded"
        | "missing" | "refused" | "stalled" | "dead-lettered" => "bad",
        "unmanaged" | "drift" | "stale" | "cancelled" | "rolled_back" | "idle" => "warn",
        _ => "info",
    };
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// A time in full.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 h ago"-style age.
pub fn age(then: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{} ago", span(now - then))
}

/// A duration as people say it: "45 s", "12 min", "3 h", "2 d".
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
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
        assert_eq!(
            link("/api/status/?code=abc", "ui/rejections?day=2030-01-02"),
            "/api/status/ui/rejections?day=2030-01-02&code=abc"
        );
        let p = page("Runs", "/api/status/?code=abc", "");
        for (path, _) in NAV {
            assert!(
                p.contains(&format!("href=\"/api/status/{path}?code=abc\"")),
                "{path}"
            );
        }
    }

    #[test]
    fn a_stored_report_has_no_navigation() {
        assert!(!page("Evaluation", "", "").contains("<nav"));
    }

    #[test]
    fn an_empty_table_says_why_and_every_table_scrolls_in_its_own_box() {
        let t = table("Runs", &["Run", "Stage"], "", "No runs yet.");
        assert!(t.starts_with("<div class=\"scroll\"><table aria-label=\"Runs\">"));
        assert!(t.contains("<td colspan=\"2\" class=\"muted\">No runs yet.</td>"));
        assert!(STYLE.contains(".scroll { overflow-x: auto;"));
    }

    #[test]
    fn ages_read_as_people_say_them() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let ago = |s: i64| age(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(5), "5 s ago");
        assert_eq!(ago(600), "10 min ago");
        assert_eq!(ago(7200), "2 h ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
        // A clock a little ahead of the writer's never shows a negative age.
        assert_eq!(ago(-30), "0 s ago");
    }

    #[test]
    fn a_command_is_escaped_and_wraps() {
        assert_eq!(
            command("fthub approve a<b"),
            "<pre class=\"command\"><code>fthub approve a&lt;b</code></pre>"
        );
        assert!(STYLE.contains("pre.command { white-space: pre-wrap;"));
    }
}
