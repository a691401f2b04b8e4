"""Sends every document the test suite's collectors received to an X-Ray API (moto's server)
and reads them back.

Usage: check-xray-api.py DOCUMENT_LOG ENDPOINT

DOCUMENT_LOG holds one JSON line per received document, {"valid": bool, "document": {...}}
(written by xray-local when XRAY_TEST_DOCUMENT_LOG is set). Documents that xray-local's own
checks found invalid come from tests that send bad input on purpose; they are sent too but only
counted. Every valid document must be accepted by PutTraceSegments (no UnprocessedTraceSegments)
and come back from BatchGetTraces (all when there are up to 3000 traces, else a seeded sample).

Every other document goes with trailing spaces (1 to 1024), as the UDP emitter pads documents
it sends together with segmentation offload: the API must take them the same.
"""
import json
import random
import sys

import boto3


def chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def main():
    log, endpoint = sys.argv[1], sys.argv[2]
    client = boto3.client(
        "xray",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    valid, invalid = {}, 0
    with open(log, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            doc = rec["document"]
            if not rec["valid"]:
                invalid += 1
                continue
            # A later copy (complete) replaces an earlier one (in progress), as in X-Ray.
            valid[(doc.get("trace_id"), doc["id"])] = doc
    docs = list(valid.values())
    unprocessed = []
    pad = random.Random(11)
    texts = [
        json.dumps(d) + (" " * pad.randint(1, 1024) if i % 2 else "") for i, d in enumerate(docs)
    ]
    for batch in chunks(texts, 50):
        r = client.put_trace_segments(TraceSegmentDocuments=batch)
        unprocessed += r.get("UnprocessedTraceSegments", [])
    by_trace = {}
    for d in docs:
        by_trace.setdefault(d["trace_id"], set()).add(d["id"])
    trace_ids = sorted(by_trace)
    if len(trace_ids) > 3000:
        trace_ids = sorted(random.Random(7).sample(trace_ids, 3000))
    missing = []
    for batch in chunks(trace_ids, 5):
        got = {}
        token = None
        while True:
            kw = {"TraceIds": batch}
            if token:
                kw["NextToken"] = token
            r = client.batch_get_traces(**kw)
            for t in r.get("Traces", []):
                for seg in t.get("Segments", []):
                    # moto leaves out the trace's Id when no segment of it has a parent-less
                    # document; the documents themselves say which trace they belong to.
                    tid = t.get("Id") or json.loads(seg["Document"]).get("trace_id")
                    got.setdefault(tid, set()).add(seg["Id"])
            token = r.get("NextToken")
            if not token:
                break
        for tid in batch:
            lost = by_trace[tid] - got.get(tid, set())
            if lost:
                missing.append((tid, sorted(lost)))
    print(
        f"X-Ray API check: {len(docs)} valid documents in {len(by_trace)} traces sent "
        f"(every other one padded with spaces), "
        f"{len(unprocessed)} unprocessed; {len(trace_ids)} traces read back, "
        f"{len(missing)} with missing documents; {invalid} deliberately invalid documents skipped"
    )
    for u in unprocessed[:10]:
        print("  unprocessed:", u)
    for m in missing[:10]:
        print("  missing:", m)
    if not docs:
        print("no documents were logged: is XRAY_TEST_DOCUMENT_LOG reaching the tests?")
        return 1
    return 1 if unprocessed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
