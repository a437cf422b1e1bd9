#!/usr/bin/env python3
"""Reference implementation of fthub's dataset rules with `json` + `tiktoken`, written
independently of the Rust code from the rules in docs/validation.md. It is the yardstick for the
golden tests (tests/golden/*.json) and for the throughput benchmark (bench/validate.sh).

usage: reference_validate.py FILE [--model M] [--method supervised|dpo] [--epochs N]

tiktoken's BPE files are downloaded on first use; offline, point TIKTOKEN_CACHE_DIR at the
files bpe-openai ships (bench/tiktoken_cache.sh prepares them).
"""
import argparse
import json
import re
import sys

import tiktoken

MODELS = [  # family, encoding, limit (longest prefix wins)
    ("gpt-4.1-nano", "o200k_base", 32768), ("gpt-4.1-mini", "o200k_base", 65536), ("gpt-4.1", "o200k_base", 65536),
    ("gpt-4o-mini", "o200k_base", 65536), ("gpt-4o", "o200k_base", 65536), ("gpt-4-0613", "cl100k_base", 65536),
    ("gpt-35-turbo", "cl100k_base", 16385), ("gpt-3.5-turbo", "cl100k_base", 16385), ("o4-mini", "o200k_base", 65536),
    ("o3-mini", "o200k_base", 65536), ("o3", "o200k_base", 65536), ("o1", "o200k_base", 65536),
]
CLASSES = ["bad_json", "data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key",
           "unrecognized_role", "missing_content", "example_missing_assistant_message", "message_data_type",
           "invalid_weight", "weight_on_non_assistant", "dpo_missing_input", "dpo_missing_output", "dpo_output_role",
           "dpo_output_missing_assistant"]
KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
ROLES = {"system", "user", "assistant", "tool", "function"}


# The compliance patterns, ASCII semantics as in the Rust scanner.
PATTERNS = [
    ("email", r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b"),
    ("phone", r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\b\d{2,4})[ .-]\d{3,4}[ .-]\d{3,4}\b"),
    ("payment_card", r"\b\d(?:[ -]?\d){12,18}\b"),
    ("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    ("us_ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
    ("ip_address", r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"),
    ("azure_storage_key", r"\b[A-Za-z0-9+/]{86}=="),
    ("connection_string", r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s]{8,}"),
    ("sas_token", r"(?i)\bsv=\d{4}-\d{2}-\d{2}&[^\s]*?\bsig=[A-Za-z0-9%+/=]{16,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("private_key", r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
    ("api_key", r"(?i)\bapi[_-]?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-./+]{12,}"),
]
COMPILED = [(c, re.compile(p.encode(), re.ASCII)) for c, p in PATTERNS]


def luhn(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(s):
    c = "".join(s.split())
    if not 15 <= len(c) <= 34:
        return False
    r = c[4:] + c[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in r)) % 97 == 1
    except ValueError:
        return False


def valid_finding(cls, text):
    if cls == "payment_card":
        d = [int(ch) for ch in text if ch.isdigit()]
        return 13 <= len(d) <= 19 and luhn(d)
    if cls == "iban":
        return iban_ok(text)
    if cls == "us_ssn":
        a, g, s = text.split("-")
        return a not in ("000", "666") and not a.startswith("9") and g != "00" and s != "0000"
    return True


def scan(text, counts):
    b = text.encode("utf-8")
    found = []
    for cls, rx in COMPILED:
        for m in rx.finditer(b):
            if valid_finding(cls, m.group().decode("utf-8", "replace")):
                found.append((cls, m.start(), m.end()))
    checked = [(s, e) for c, s, e in found if c in ("payment_card", "iban", "us_ssn")]
    for cls, s, e in found:
        if cls == "phone" and any(cs < e and s < ce for cs, ce in checked):
            continue
        counts[cls] = counts.get(cls, 0) + 1


def scan_value(v, counts):
    if isinstance(v, str):
        scan(v, counts)
    elif isinstance(v, list):
        for x in v:
            scan_value(x, counts)
    elif isinstance(v, dict):
        for x in v.values():
            scan_value(x, counts)


def model_spec(model):
    m = model.lower()
    best = None
    for fam, enc, lim in MODELS:
        if m == fam or m.startswith(fam + "-") or m.startswith(fam + "."):
            if best is None or len(fam) > len(best[0]):
                best = (fam, enc, lim)
    return best


def check_message(m, errs):
    if not isinstance(m, dict):
        errs.append("message_data_type")
        return False
    has_call = "tool_calls" in m or "function_call" in m
    if "role" not in m or ("content" not in m and not has_call):
        errs.append("message_missing_key")
    if any(k not in KEYS for k in m):
        errs.append("message_unrecognized_key")
    role = m.get("role")
    if not (isinstance(role, str) and role in ROLES):
        errs.append("unrecognized_role")
    c = m.get("content")
    ok = (isinstance(c, str) and c != "") or (isinstance(c, list) and role == "user")
    if not ok and not has_call:
        errs.append("missing_content")
    if "weight" in m:
        w = m["weight"]
        if isinstance(w, bool) or w not in (0, 1):
            errs.append("invalid_weight")
        elif role != "assistant":
            errs.append("weight_on_non_assistant")
    return True


def message_tokens(enc, m):
    n = 3
    for k, v in m.items():
        if isinstance(v, str):
            n += len(enc.encode_ordinary(v))
        elif k in ("tool_calls", "function_call"):
            n += len(enc.encode_ordinary(json.dumps(v)))
        elif k == "content" and isinstance(v, list):
            n += sum(len(enc.encode_ordinary(p["text"])) for p in v if isinstance(p, dict) and isinstance(p.get("text"), str))
        if k == "name":
            n += 1
    return n


def nonempty_list(v):
    return v if isinstance(v, list) and v else None


def check(ex, method, enc):
    errs = []
    if method == "supervised":
        msgs = nonempty_list(ex.get("messages"))
        if msgs is None:
            return ["missing_messages_list"], None
        for m in msgs:
            check_message(m, errs)
        objs = [m for m in msgs if isinstance(m, dict)]
        if not any(m.get("role") == "assistant" for m in objs):
            errs.append("example_missing_assistant_message")
        if errs:
            return errs, None
        return [], (objs, [m for m in objs if m.get("role") == "assistant"], objs)
    inp = ex.get("input")
    inp = nonempty_list(inp.get("messages")) if isinstance(inp, dict) else None
    if inp is None:
        return ["dpo_missing_input"], None
    for m in inp:
        check_message(m, errs)
    outs = []
    for key in ("preferred_output", "non_preferred_output"):
        out = nonempty_list(ex.get(key))
        if out is None:
            errs.append("dpo_missing_output")
            continue
        for m in out:
            if check_message(m, errs) and "role" in m and m["role"] not in ("assistant", "tool"):
                errs.append("dpo_output_role")
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in out):
            errs.append("dpo_output_missing_assistant")
        outs.append([m for m in out if isinstance(m, dict)])
    if errs:
        return errs, None
    inp_objs = [m for m in inp if isinstance(m, dict)]
    out_objs = [m for o in outs for m in o]
    return [], (inp_objs + out_objs, [m for m in out_objs if m.get("role") == "assistant"], inp_objs)


def default_epochs(n):
    if n == 0:
        return 3
    if n * 3 < 100:
        return min(25, 100 // n)
    if n * 3 > 25000:
        return max(1, 25000 // n)
    return 3


def validate(path, model, method, epochs):
    fam, enc_name, limit = model_spec(model)
    enc = tiktoken.get_encoding(enc_name)
    raw = open(path, "rb").read()
    bom = raw.startswith(b"\xef\xbb\xbf")
    body = raw[3:] if bom else raw
    counts = {c: 0 for c in CLASSES}
    examples = valid = total = assistant = max_ex = over = billable = miss_sys = miss_user = 0
    seen, dups = set(), 0
    findings = {}
    for line in body.split(b"\n"):
        line = line.strip(b" \t\r\n\x0b\x0c")
        if not line:
            continue
        examples += 1
        if line in seen:
            dups += 1
        seen.add(line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            counts["bad_json"] += 1
            continue
        try:
            ex = json.loads(text)
        except ValueError:
            counts["bad_json"] += 1
            scan(text, findings)
            continue
        scan_value(ex, findings)
        if not isinstance(ex, dict):
            counts["data_type"] += 1
            continue
        errs, ok = check(ex, method, enc)
        for e in errs:
            counts[e] += 1
        if ok is None:
            continue
        msgs, asst, ctx = ok
        valid += 1
        t = 3 + sum(message_tokens(enc, m) for m in msgs)
        total += t
        assistant += sum(len(enc.encode_ordinary(m["content"])) for m in asst if isinstance(m.get("content"), str))
        max_ex = max(max_ex, t)
        over += t > limit
        billable += min(limit, t)
        miss_sys += not any(m.get("role") == "system" for m in ctx)
        miss_user += not any(m.get("role") == "user" for m in ctx)
    ep = epochs if epochs is not None else default_epochs(valid)
    return {"file": path, "bytes": len(raw), "model": model, "encoding": enc_name, "token_limit": limit, "bom": bom,
            "examples": examples, "valid_examples": valid, "format_errors": counts,
            "tokens": {"total": total, "assistant": assistant, "max_example": max_ex},
            "examples_over_limit": over, "missing_system": miss_sys, "missing_user": miss_user,
            "duplicates": dups, "epochs": ep, "billing_tokens": ep * billable,
            "compliance_counts": dict(sorted(findings.items()))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--model", default="gpt-4.1-mini")
    ap.add_argument("--method", default="supervised", choices=["supervised", "dpo"])
    ap.add_argument("--epochs", type=int)
    a = ap.parse_args()
    json.dump(validate(a.file, a.model, a.method, a.epochs), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
