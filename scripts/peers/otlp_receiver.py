#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for the OTLP exporter tests.

Decodes each POST /v1/traces body with the OpenTelemetry project's own Python messages
(the `opentelemetry-proto` package), writes what it received as JSON lines, and answers as
told. Listens on 127.0.0.1 on a free port and prints `port N` on stdout once ready.

    otlp_receiver.py --out FILE [--responses 503,503] [--retry-after 1] [--delay-ms 0]

--responses: the HTTP statuses of the first requests, in order (later ones get 200); `400*`
    answers 400 to every request. Lines written to --out:
  {"type": "request", "n": 1, "status": 503, "path": ..., "headers": {...}, "spans": 3}
  {"type": "span", "request": 1, "status": 503, "resource": {...}, "scope": ..., "trace_id":
   hex, "span_id": hex, "parent_span_id": hex, "name": ..., "kind": int, "start": ns,
   "end": ns, "flags": int, "attributes": {...}, "events": [...], "status_code": int,
   "status_message": ...}
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return list(v.bytes_value)
    if kind == "int_value":
        return {"int": v.int_value}
    if kind == "double_value":
        return {"double": v.double_value}
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class State:
    def __init__(self, out, responses, retry_after, delay):
        self.lock = threading.Lock()
        self.n = 0
        self.out = open(out, "a", encoding="utf-8")
        self.responses = responses
        self.retry_after = retry_after
        self.delay = delay

    def next_status(self):
        with self.lock:
            self.n += 1
            n = self.n
        if self.responses == ["400*"]:
            return n, 400
        if n <= len(self.responses):
            return n, int(self.responses[n - 1])
        return n, 200

    def write(self, lines):
        with self.lock:
            for line in lines:
                self.out.write(json.dumps(line) + "\n")
            self.out.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.answer(404, b"not found", "text/plain")
            return
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decoding error is a bad request
            self.answer(400, str(e).encode(), "text/plain")
            return
        n, status = state.next_status()
        if state.delay:
            time.sleep(state.delay)
        lines = []
        count = 0
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    count += 1
                    lines.append({
                        "type": "span",
                        "request": n,
                        "status": status,
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "flags": span.flags,
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "time": e.time_unix_nano,
                             "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "status_code": span.status.code,
                        "status_message": span.status.message,
                    })
        lines.insert(0, {
            "type": "request",
            "n": n,
            "status": status,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "spans": count,
        })
        state.write(lines)
        if status == 200:
            self.answer(200, ExportTraceServiceResponse().SerializeToString(),
                        "application/x-protobuf")
        else:
            extra = {}
            if status in (429, 503) and state.retry_after is not None:
                extra["Retry-After"] = str(state.retry_after)
            self.answer(status, b"", "application/x-protobuf", extra)

    def answer(self, status, body, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--responses", default="")
    p.add_argument("--retry-after", type=int, default=None)
    p.add_argument("--delay-ms", type=int, default=0)
    args = p.parse_args()
    responses = [r for r in args.responses.split(",") if r]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args.out, responses, args.retry_after, args.delay_ms / 1000.0)
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
