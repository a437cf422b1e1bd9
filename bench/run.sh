#!/usr/bin/env bash
# The benchmark harness: whole-process figures for validation, the handler, keepalive fan-out
# and the demo. `--short` runs small sizes (CI: fails only on errors, never on timing).
# Results are printed as a Markdown table and written to target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
short=false
[ "${1:-}" = "--short" ] && short=true
out=target/bench
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-target}"

if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk curl
fi
venv="${FTHUB_VENV:-${TMPDIR:-/tmp}/fthub-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import tiktoken" 2>/dev/null || "$venv/bin/pip" install -q --disable-pip-version-check tiktoken==0.12.0
cargo build --release --locked --bin fthub --example keepalive_fanout --example state_scale --example eval_pace
fthub="$target/release/fthub"
export TIKTOKEN_CACHE_DIR
TIKTOKEN_CACHE_DIR=$(bench/tiktoken_cache.sh)

results="$out/results.md"
{
  echo "| Measure | Value |"
  echo "|---|---|"
} > "$results"
row() { echo "| $1 | $2 |" | tee -a "$results"; }

# 1. Validation throughput: Rust (all cores and one) vs the Python reference, same rules.
sizes="50 500"; $short && sizes="5"
for mb in $sizes; do
  data="$out/chat-$mb.jsonl"
  [ -s "$data" ] || python3 bench/gen_dataset.py "$data" "$mb" --seed 5
  bytes=$(stat -c %s "$data")
  for threads in "" 1; do
    label=$([ -z "$threads" ] && echo "$(nproc) threads" || echo "1 thread")
    arg=$([ -z "$threads" ] && echo "" || echo "--threads 1")
    /usr/bin/time -f "%e %M" -o "$out/time" "$fthub" validate "$data" --format json $arg > "$out/rust.json" || true
    read -r secs rss < <(tail -n 1 "$out/time")
    [ -z "$threads" ] && rust_secs=$secs
    row "validate ${mb} MB, Rust, $label" "$(python3 -c "print(f'{$bytes/1e6/$secs:.1f} MB/s, {$secs:.2f} s, peak RSS {$rss/1024:.0f} MB')")"
  done
  /usr/bin/time -f "%e %M" -o "$out/time" "$venv/bin/python" bench/reference_validate.py "$data" > "$out/py.json"
  read -r pysecs pyrss < <(tail -n 1 "$out/time")
  row "validate ${mb} MB, Python json+tiktoken reference" "$(python3 -c "print(f'{$bytes/1e6/$pysecs:.1f} MB/s, {$pysecs:.2f} s, peak RSS {$pyrss/1024:.0f} MB')")"
  python3 - "$out/rust.json" "$out/py.json" <<'PY'
import json, sys
r, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
pc = p.pop("compliance_counts")
diff = [k for k, v in p.items() if k != "file" and r.get(k) != v]
if diff or pc != {k: v["count"] for k, v in r["compliance"].items()}:
    sys.exit(f"Rust and the Python reference disagree on {diff or 'compliance'}")
PY
  row "validate ${mb} MB, speed-up over Python (identical counts)" "$(python3 -c "print(f'{$pysecs/$rust_secs:.1f}x')")"
done

# 2. Handler: cold start, idle RSS, and latency/throughput under a loopback load.
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
home=$(mktemp -d)
start_ns=$(date +%s%N)
FUNCTIONS_CUSTOMHANDLER_PORT=$port FTHUB_HOME=$home FTHUB_LOG=error "$fthub" serve > /dev/null 2>&1 &
serve=$!
for _ in $(seq 1 4000); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.005
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "fthub serve did not start" >&2; exit 1; }
row "handler cold start (spawn → first answer on /)" "$(( ($(date +%s%N) - start_ns) / 1000000 )) ms"
sleep 1
row "handler idle RSS" "$(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$serve/status)"
duration=$($short && echo 2s || echo 10s)
cat > "$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BODY_FILE")):read("*a")
LUA
for fn in Status PromoteOnEvaluation; do
  body=$([ "$fn" = Status ] && echo tests/fixtures/envelopes/http_status_get.json || echo tests/fixtures/envelopes/service_bus_not_json.json)
  BODY_FILE=$body wrk -t2 -c16 -d"$duration" --latency -s "$out/post.lua" "http://127.0.0.1:$port/$fn" > "$out/wrk-$fn.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-$fn.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk-$fn.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk-$fn.txt")
  what=$([ "$fn" = Status ] && echo "no-op HTTP invocation (Status health)" || echo "Service Bus invocation (decode, reject, record)")
  row "handler $what, 16 connections" "$rps req/s, p50 $p50, p99 $p99"
done
kill $serve
rm -rf "$home"

# 3. Keepalive fan-out over the emulator.
fan=$($short && echo "100 10 100" || echo "1000 10 100")
"$target/release/examples/keepalive_fanout" $fan > "$out/fanout.json"
python3 - "$out/fanout.json" >> "$results" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"| keepalive fan-out: {d['deployments']} deployments, {d['spokes']} spokes, {d['latency_ms']} ms latency, "
      f"{d['per_spoke_concurrency']} per spoke | {d['wall_seconds']} s; lower bound {d['lower_bound_seconds']} s; ratio {d['ratio']} |")
PY
tail -n 1 "$results"

# 4. End to end: the demo with no training time, split by stage.
"$fthub" demo --training-seconds 0 --home "$(mktemp -d)" > "$out/demo.txt"
python3 - "$out/demo.txt" >> "$results" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
steps = re.findall(r"\[(\d+)\] (.*?)\s+\(t = ([\d.]+) s\)", text)
total = float(re.search(r"All steps passed in ([\d.]+) s", text).group(1))
times = [float(t) for _, _, t in steps] + [total]
labels = {"1": "start dev", "2": "submit", "3": "validate + job", "4": "training", "5": "evaluation", "6": "Dev (2 regions)",
          "7": "Test approval", "8": "forged approval refused", "9": "Prod (2 regions)", "10": "second project to Test",
          "11": "16 days of keepalive", "12": "summary"}
parts = [f"{labels.get(n, n)} {times[i + 1] - times[i]:.1f} s" for i, (n, _, _) in enumerate(steps)]
print(f"| demo end to end, training time 0 | {total:.1f} s: " + "; ".join(parts[:-1]) + " |")
PY
tail -n 1 "$results"
# 5. State at scale: runs x 15 transitions in the local store; what the reconciler's index read
# costs (must follow the active runs, not all runs) and the Status views' latency.
scale="10000 100"; $short && scale="1000 20"
# shellcheck disable=SC2086
"$target/release/examples/state_scale" $scale > "$out/scale.json"
python3 - "$out/scale.json" >> "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r["tick_blobs_read"] > r["active"] + 2:
    sys.exit(f"the active index read {r['tick_blobs_read']} blobs for {r['active']} active runs")
n = f"{r['runs']:,} runs x 15 transitions"
print(f"| reconcile tick, {n}, {r['active']} active | {r['tick_blobs_read']} blobs read + {r['tick_listings']} listing of {r['tick_names_listed']} names, {r['tick_index_read_ms']:.1f} ms |")
print(f"| status/runs first page (50), {n} | {r['status_runs_first_page_ms']:.1f} ms, {r['status_runs_blobs_read']} blobs read |")
print(f"| status/audit/{{run}}, {n} | {r['status_audit_run_ms']:.1f} ms, {r['status_audit_run_blobs_read']} blobs read |")
PY
tail -n 3 "$results"

# 6. Evaluation at the rate limit: a real evaluation (candidate and base, each on a Hub
# deployment of N capacity units) against the emulator's per-deployment limits; the wall time
# as a ratio to the bound the limits set (1.0 is the limit itself), and calls refused.
pace="300 100"; $short && pace="40 100"
# shellcheck disable=SC2086
"$target/release/examples/eval_pace" $pace > "$out/pace.json"
python3 - "$out/pace.json" >> "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| evaluation at the rate limit: {r['examples']} examples x 2 deployments of {r['capacity_units']} units ({r['requests_per_minute']:.0f} RPM) "
      f"| {r['wall_seconds']} s; bound {r['lower_bound_seconds']} s; ratio {r['ratio']}; {r['throttled']} calls refused with 429 |")
PY
tail -n 1 "$results"

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
