#!/usr/bin/env python3
"""A minimal custom handler used by the `fthub dev` tests, independent of fthub's own code.

It listens where the host says (FUNCTIONS_CUSTOMHANDLER_PORT), answers GET / and records every
invocation (path, headers, body) as one JSON line in $RECORD_FILE. Behaviour per function comes
from $BEHAVIOUR_FILE (re-read on every call), a JSON object: {"FunctionName": {"status": 500}} fails,
{"hang": true} never answers, {"outputs": {...}} returns those outputs.
"""
import json
import os
import sys
import time
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORD = os.environ["RECORD_FILE"]
BEHAVIOUR = os.environ.get("BEHAVIOUR_FILE", "")
LOCK = threading.Lock()


def behaviour(function):
    try:
        with open(BEHAVIOUR) as f:
            return json.load(f).get(function, {})
    except (OSError, ValueError):
        return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(200, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode()
        function = self.path.strip("/")
        with LOCK:
            with open(RECORD, "a") as f:
                f.write(json.dumps({"function": function, "pid": os.getpid(), "at": time.time(), "headers": dict(self.headers), "body": json.loads(raw)}) + "\n")
        b = behaviour(function)
        if b.get("hang"):
            time.sleep(3600)
        status = b.get("status", 200)
        self.reply(status, json.dumps({"Outputs": b.get("outputs", {}), "Logs": ["recorded"], "ReturnValue": None}))


def main():
    port = int(os.environ["FUNCTIONS_CUSTOMHANDLER_PORT"])
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
