"""A last hop traced by the official Python X-Ray SDK's Flask middleware.

Usage: python flask_callee.py <daemon host:port>

Listens on an ephemeral loopback port and prints "PORT <n>" once it accepts connections.
GET /echo answers, as JSON, with the X-Amzn-Trace-Id header it received. Its segments
("flask-callee") go over UDP to the given daemon address.
"""

import sys

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware

# sampling=False: a request without a decision (or with Sampled=?) is sampled; Sampled=0/1
# from the caller is obeyed.
xray_recorder.configure(
    service="flask-callee",
    daemon_address=sys.argv[1],
    sampling=False,
    context_missing="IGNORE_ERROR",
    plugins=(),
)

app = Flask(__name__)
XRayMiddleware(app, xray_recorder)


@app.route("/echo")
def echo():
    return jsonify({"received_trace_header": request.headers.get("X-Amzn-Trace-Id")})


server = make_server("127.0.0.1", 0, app, threaded=True)
print(f"PORT {server.server_port}", flush=True)
server.serve_forever()
