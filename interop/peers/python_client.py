"""The first hop of the interop chains: a client traced by the official Python X-Ray SDK.

Usage: python python_client.py <daemon host:port> <url> <mode> [lineage]

mode:
  sampled    a sampled segment "python-client"; the patched `requests` call becomes its
             subsegment and sends the trace header (with `Lineage=<lineage>` when given,
             carried the way the SDK carries extra pairs: from the segment's origin header)
  unsampled  the same with an unsampled segment (the SDK then sends Sampled=0)
  ask        no segment: the request carries a hand-written `Root=<new>;Sampled=?` header
             (plus Lineage), since the SDK itself never sends `?`

Prints one JSON line: the trace id, the status, the X-Amzn-Trace-Id response header, and the
response body (parsed as JSON when it is JSON).
"""

import json
import os
import sys

# Keep the trace id of unsampled segments (the SDK's default replaces it with zeros).
os.environ.setdefault("AWS_XRAY_NOOP_ID", "false")

import requests  # noqa: E402

from aws_xray_sdk.core import patch, xray_recorder  # noqa: E402
from aws_xray_sdk.core.models.trace_header import TraceHeader  # noqa: E402
from aws_xray_sdk.core.models.traceid import TraceId  # noqa: E402

daemon_address, url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
lineage = sys.argv[4] if len(sys.argv) > 4 else None

# sampling=False: no sampling rules, every segment without an explicit decision is sampled.
xray_recorder.configure(
    service="python-client",
    daemon_address=daemon_address,
    sampling=False,
    context_missing="IGNORE_ERROR",
    plugins=(),
)
patch(["requests"])

extra = {"Lineage": lineage} if lineage else None

if mode in ("sampled", "unsampled"):
    segment = xray_recorder.begin_segment(
        "python-client", sampling=(1 if mode == "sampled" else 0)
    )
    if extra:
        segment.save_origin_trace_header(
            TraceHeader(root=segment.trace_id, sampled=segment.sampled, data=extra)
        )
    trace_id = segment.trace_id
    try:
        response = requests.get(url, timeout=20)
    finally:
        xray_recorder.end_segment()
elif mode == "ask":
    trace_id = TraceId().to_id()
    header = TraceHeader(root=trace_id, sampled="?", data=extra).to_header_str()
    response = requests.get(url, headers={"X-Amzn-Trace-Id": header}, timeout=20)
else:
    sys.exit(f"unknown mode {mode!r}")

try:
    body = response.json()
except ValueError:
    body = response.text

print(
    json.dumps(
        {
            "trace_id": trace_id,
            "status": response.status_code,
            "response_trace_header": response.headers.get("X-Amzn-Trace-Id"),
            "body": body,
        }
    ),
    flush=True,
)
