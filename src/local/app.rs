//! The function app on disk: `host.json`, `functions/*/function.json`,
//! `local.settings.json` and the local Event Grid subscriptions (`eventgrid.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Problems loading the app. All are the user's configuration to fix.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON of the expected shape.
    #[error("{path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A binding from function.json.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `type`, e.g. `serviceBusTrigger`.
    pub kind: String,
    /// `direction`: `in` or `out`.
    pub direction: String,
    /// `name`.
    pub name: String,
    /// All properties as written.
    pub raw: Map<String, Value>,
}

impl Binding {
    /// A string property, case-insensitively.
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.raw
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
    }
    /// A boolean property.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.raw
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_bool())
    }
    /// True for a trigger binding.
    pub fn is_trigger(&self) -> bool {
        self.kind.to_ascii_lowercase().ends_with("trigger")
    }
    /// True when `dataType` is `binary`.
    pub fn is_binary(&self) -> bool {
        self.prop("dataType")
            .is_some_and(|d| d.eq_ignore_ascii_case("binary"))
    }
}

/// A retry policy (`fixedDelay` or `exponentialBackoff`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; `-1` is forever.
    pub max_retry_count: i64,
    /// Delay before retry `n` (0-based).
    pub delays: RetryDelays,
}

/// How retry delays grow.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryDelays {
    /// The same delay each time.
    Fixed(Duration),
    /// Doubling from `min`, capped at `max`.
    Exponential {
        /// First delay.
        min: Duration,
        /// Largest delay.
        max: Duration,
    },
}

impl RetryPolicy {
    /// The delay before retry number `n` (0 for the first retry).
    pub fn delay(&self, n: u32) -> Duration {
        match &self.delays {
            RetryDelays::Fixed(d) => *d,
            RetryDelays::Exponential { min, max } => {
                min.saturating_mul(1u32 << n.min(20)).min(*max)
            }
        }
    }

    fn parse(v: &Value) -> Option<Self> {
        let o = v.as_object()?;
        let s = |k: &str| o.get(k).and_then(Value::as_str);
        let max_retry_count = o.get("maxRetryCount").and_then(Value::as_i64).unwrap_or(0);
        let delays = match s("strategy")?.to_ascii_lowercase().as_str() {
            "fixeddelay" => RetryDelays::Fixed(parse_timespan(s("delayInterval")?)?),
            "exponentialbackoff" => RetryDelays::Exponential {
                min: parse_timespan(s("minimumInterval")?)?,
                max: parse_timespan(s("maximumInterval")?)?,
            },
            _ => return None,
        };
        Some(Self {
            max_retry_count,
            delays,
        })
    }
}

/// One function.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Folder name.
    pub name: String,
    /// Bindings in order.
    pub bindings: Vec<Binding>,
    /// Function-level retry policy.
    pub retry: Option<RetryPolicy>,
    /// `disabled: true`.
    pub disabled: bool,
}

impl FunctionDef {
    /// The trigger binding.
    pub fn trigger(&self) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.is_trigger())
    }
    /// An output binding by name (case-insensitive).
    pub fn output(&self, name: &str) -> Option<&Binding> {
        self.bindings
            .iter()
            .find(|b| b.direction.eq_ignore_ascii_case("out") && b.name.eq_ignore_ascii_case(name))
    }
    /// Output bindings.
    pub fn outputs(&self) -> impl Iterator<Item = &Binding> {
        self.bindings
            .iter()
            .filter(|b| b.direction.eq_ignore_ascii_case("out"))
    }
    /// "HTTP in and out": exactly one input, an httpTrigger, and one output, `http`.
    pub fn is_http_in_and_out(&self) -> bool {
        let ins: Vec<_> = self
            .bindings
            .iter()
            .filter(|b| !b.direction.eq_ignore_ascii_case("out"))
            .collect();
        let outs: Vec<_> = self.outputs().collect();
        ins.len() == 1
            && ins[0].kind.eq_ignore_ascii_case("httpTrigger")
            && outs.len() == 1
            && outs[0].kind.eq_ignore_ascii_case("http")
    }
}

/// The parts of host.json the stand-in honours.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `customHandler.description.defaultExecutablePath`.
    pub executable: String,
    /// `customHandler.description.arguments` (with `%VAR%` expanded at launch).
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`.
    pub working_directory: Option<String>,
    /// `customHandler.enableForwardingHttpRequest`.
    pub forward_http: bool,
    /// `functionTimeout`; `None` is unbounded. Default 30 min (non-Consumption plans).
    pub function_timeout: Option<Duration>,
    /// `extensions.http.routePrefix`, default `api`.
    pub route_prefix: String,
    /// `extensions.serviceBus.maxConcurrentCalls`, default 16.
    pub sb_max_concurrent_calls: usize,
    /// `extensions.serviceBus.maxAutoLockRenewalDuration`, default 5 min.
    pub sb_max_lock_renewal: Duration,
    /// `extensions.blobs.poisonBlobThreshold`, default 5.
    pub poison_blob_threshold: u32,
    /// `extensions.blobs.maxDegreeOfParallelism`, default 8.
    pub blob_parallelism: usize,
    /// Host-level `retry`.
    pub retry: Option<RetryPolicy>,
}

/// A local Event Grid subscription: which blob events reach which function.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventGridSubscription {
    /// Subscription name.
    pub name: String,
    /// The eventGridTrigger function it delivers to.
    pub function: String,
    /// The watched container.
    pub container: String,
    /// `includedEventTypes`; only `Microsoft.Storage.BlobCreated` is produced locally.
    #[serde(default)]
    pub included_event_types: Vec<String>,
    /// `subjectBeginsWith` filter.
    #[serde(default)]
    pub subject_begins_with: Option<String>,
    /// `subjectEndsWith` filter.
    #[serde(default)]
    pub subject_ends_with: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SubscriptionsFile {
    subscriptions: Vec<EventGridSubscription>,
}

/// The whole app.
#[derive(Debug, Clone)]
pub struct FunctionApp {
    /// App root.
    pub root: PathBuf,
    /// host.json.
    pub host: HostConfig,
    /// Functions by name order.
    pub functions: Vec<FunctionDef>,
    /// `local.settings.json` `Values`, passed to the handler's environment.
    pub settings: BTreeMap<String, String>,
    /// Local Event Grid subscriptions.
    pub subscriptions: Vec<EventGridSubscription>,
}

fn read_json(path: &Path) -> Result<Value, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| AppError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn pointer<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)?;
    }
    Some(cur)
}

/// Parses a .NET `TimeSpan` as host.json writes it: `hh:mm:ss`, `d.hh:mm:ss`, with
/// optional fractional seconds.
pub fn parse_timespan(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return None;
    };
    let secs: f64 = sec.parse().ok()?;
    let total = days * 86_400 + h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    Some(Duration::from_secs(total) + Duration::from_secs_f64(secs))
}

impl FunctionApp {
    /// Loads the app at `root`.
    ///
    /// # Errors
    /// When host.json or a function.json is missing or malformed.
    pub fn load(root: &Path) -> Result<Self, AppError> {
        let host_path = root.join("host.json");
        let host = read_json(&host_path)?;
        let invalid = |reason: &str| AppError::Invalid {
            path: host_path.clone(),
            reason: reason.to_owned(),
        };
        let desc = pointer(&host, &["customHandler", "description"])
            .ok_or_else(|| invalid("no customHandler.description"))?;
        let executable = pointer(desc, &["defaultExecutablePath"])
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no customHandler.description.defaultExecutablePath"))?
            .to_owned();
        let arguments = pointer(desc, &["arguments"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let str_at = |p: &[&str]| pointer(&host, p).and_then(Value::as_str).map(str::to_owned);
        let num_at = |p: &[&str]| pointer(&host, p).and_then(Value::as_u64);
        let function_timeout = match str_at(&["functionTimeout"]) {
            Some(t) if t.trim() == "-1" => None,
            Some(t) => Some(
                parse_timespan(&t).ok_or_else(|| invalid("functionTimeout is not a TimeSpan"))?,
            ),
            None => Some(Duration::from_secs(30 * 60)),
        };
        let host_cfg = HostConfig {
            executable,
            arguments,
            working_directory: pointer(desc, &["workingDirectory"])
                .and_then(Value::as_str)
                .map(str::to_owned),
            forward_http: pointer(&host, &["customHandler", "enableForwardingHttpRequest"])
                .and_then(Value::as_bool)
                .unwrap_or(false),
            function_timeout,
            route_prefix: str_at(&["extensions", "http", "routePrefix"])
                .unwrap_or_else(|| "api".into()),
            sb_max_concurrent_calls: num_at(&["extensions", "serviceBus", "maxConcurrentCalls"])
                .unwrap_or(16)
                .max(1) as usize,
            sb_max_lock_renewal: str_at(&[
                "extensions",
                "serviceBus",
                "maxAutoLockRenewalDuration",
            ])
            .and_then(|t| parse_timespan(&t))
            .unwrap_or(Duration::from_secs(300)),
            poison_blob_threshold: num_at(&["extensions", "blobs", "poisonBlobThreshold"])
                .unwrap_or(5)
                .max(1) as u32,
            blob_parallelism: num_at(&["extensions", "blobs", "maxDegreeOfParallelism"])
                .unwrap_or(8)
                .max(1) as usize,
            retry: pointer(&host, &["retry"]).and_then(RetryPolicy::parse),
        };

        let mut functions = Vec::new();
        let fdir = root.join("functions");
        let entries = std::fs::read_dir(&fdir).map_err(|source| AppError::Read {
            path: fdir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| AppError::Read {
                path: fdir.clone(),
                source,
            })?;
            let path = entry.path().join("function.json");
            if !path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            functions.push(Self::load_function(&name, &path)?);
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));

        let settings = match read_json(&root.join("local.settings.json")) {
            Ok(v) => pointer(&v, &["Values"])
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            Err(AppError::Read { .. }) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let subs_path = root.join("eventgrid.json");
        let subscriptions = if subs_path.is_file() {
            let v = read_json(&subs_path)?;
            serde_json::from_value::<SubscriptionsFile>(v)
                .map_err(|e| AppError::Invalid {
                    path: subs_path.clone(),
                    reason: e.to_string(),
                })?
                .subscriptions
        } else {
            Vec::new()
        };
        Ok(Self {
            root: root.to_owned(),
            host: host_cfg,
            functions,
            settings,
            subscriptions,
        })
    }

    fn load_function(name: &str, path: &Path) -> Result<FunctionDef, AppError> {
        let v = read_json(path)?;
        let invalid = |reason: String| AppError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let bindings = v
            .get("bindings")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("no bindings array".into()))?
            .iter()
            .map(|b| {
                let raw = b
                    .as_object()
                    .cloned()
                    .ok_or_else(|| invalid("a binding is not an object".into()))?;
                let get = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
                Ok(Binding {
                    kind: get("type").ok_or_else(|| invalid("a binding has no type".into()))?,
                    direction: get("direction").unwrap_or_else(|| "in".into()),
                    name: get("name").ok_or_else(|| invalid("a binding has no name".into()))?,
                    raw,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        if bindings.iter().filter(|b| b.is_trigger()).count() != 1 {
            return Err(invalid("a function needs exactly one trigger".into()));
        }
        Ok(FunctionDef {
            name: name.to_owned(),
            bindings,
            retry: v.get("retry").and_then(RetryPolicy::parse),
            disabled: v.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// A function by name.
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// Expands `%VAR%` from `lookup`; unresolved references are removed, as the host does.
pub fn expand_vars(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => {
                out.push_str(&lookup(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_parse_as_host_json_writes_them() {
        assert_eq!(parse_timespan("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_timespan("1.02:00:00"),
            Some(Duration::from_secs(93_600))
        );
        assert_eq!(
            parse_timespan("00:00:01.5"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_timespan("ten minutes"), None);
    }

    #[test]
    fn percent_variables_expand_and_unknown_ones_vanish() {
        let look = |k: &str| (k == "A").then(|| "x".to_owned());
        assert_eq!(expand_vars("--db %A% %B%/y %", look), "--db x /y %");
    }

    #[test]
    fn exponential_retry_delays_double_and_cap() {
        let p = RetryPolicy {
            max_retry_count: 5,
            delays: RetryDelays::Exponential {
                min: Duration::from_secs(1),
                max: Duration::from_secs(5),
            },
        };
        let d: Vec<u64> = (0..4).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 5]);
    }
}
