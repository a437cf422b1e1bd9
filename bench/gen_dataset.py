#!/usr/bin/env python3
"""Generates a chat fine-tuning dataset of about SIZE megabytes for benchmarks and
cross-checks: realistic multi-turn conversations, tool calls, weights, Unicode, escapes,
whitespace runs, special-token lookalikes, and a small share of broken lines.

usage: gen_dataset.py OUT SIZE_MB [--seed N] [--clean]
"""
import json
import random
import sys

WORDS = ("the order invoice refund delivery account password reset subscription warranty courier "
         "parcel tracking weekend support agent billing address payment card shipping return label "
         "Seattle Zürich 東京 Ελλάδα naïve café résumé 😀 ✓ <|endoftext|> \t tabs   spaces\nnewline").split(" ")


def sentence(r, n):
    return " ".join(r.choice(WORDS) for _ in range(n)).strip() or "ok"


def example(r, i):
    msgs = [{"role": "system", "content": "You are a helpful support assistant. " + sentence(r, r.randint(3, 20))}]
    for t in range(r.randint(1, 4)):
        msgs.append({"role": "user", "content": sentence(r, r.randint(5, 120))})
        if r.random() < 0.15:
            cid = f"call_{i}_{t}"
            msgs.append({"role": "assistant", "tool_calls": [{"id": cid, "type": "function", "function": {
                "name": "lookup_order", "arguments": json.dumps({"order": i, "note": sentence(r, 4)}, ensure_ascii=r.random() < 0.5)}}]})
            msgs.append({"role": "tool", "tool_call_id": cid, "content": json.dumps({"status": "shipped", "eta_days": r.randint(1, 9)})})
        m = {"role": "assistant", "content": sentence(r, r.randint(5, 200))}
        if r.random() < 0.1:
            m["weight"] = r.choice([0, 1, 1.0])
        msgs.append(m)
    ex = {"messages": msgs}
    if r.random() < 0.3:
        msgs.pop(0)
    return ex


def broken(r, i):
    return r.choice([
        '{"messages": [{"role": "user", "content": "unfinished"',
        '{"messages": [{"role": "user", "content": "no reply"}]}',
        '{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
        '{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y", "extra": true}]}',
        '["not", "an", "object"]',
        '{"messages": []}',
        '{"messages": [{"role": "user", "content": "u", "weight": 1}, {"role": "assistant", "content": "a", "weight": 3}]}',
    ])


def main():
    out, size_mb = sys.argv[1], float(sys.argv[2])
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
    clean = "--clean" in sys.argv
    r = random.Random(seed)
    target = int(size_mb * 1024 * 1024)
    written = 0
    i = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        while written < target:
            i += 1
            if not clean and r.random() < 0.02:
                line = broken(r, i)
            else:
                line = json.dumps(example(r, i), ensure_ascii=r.random() < 0.3)
            nl = "\r\n" if r.random() < 0.05 else "\n"
            if r.random() < 0.01:
                nl += "\n"
            f.write(line + nl)
            written += len(line.encode()) + len(nl)


if __name__ == "__main__":
    main()
