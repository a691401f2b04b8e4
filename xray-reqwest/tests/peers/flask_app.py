"""A Flask service traced by the official Python X-Ray SDK, for the interoperability tests.

Usage: python flask_app.py <daemon host:port> <service name>

It listens on an ephemeral loopback port and prints "PORT <n>" on stdout once it accepts
connections. GET /echo answers with the X-Amzn-Trace-Id header it received, as JSON. Its
segments go over UDP to the daemon address given, where the test's collector receives them.
"""

import sys

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware

daemon_address, service = sys.argv[1], sys.argv[2]

# sampling=False: no local sampling rules, so every request without a decision is sampled;
# a caller's Sampled=0 or Sampled=1 is still followed.
xray_recorder.configure(
    service=service,
    daemon_address=daemon_address,
    sampling=False,
    context_missing="LOG_ERROR",
    plugins=(),
)

app = Flask(__name__)
XRayMiddleware(app, xray_recorder)


@app.route("/echo")
def echo():
    return jsonify({"x-amzn-trace-id": request.headers.get("X-Amzn-Trace-Id")})


server = make_server("127.0.0.1", 0, app, threaded=True)
print(f"PORT {server.server_port}", flush=True)
server.serve_forever()
