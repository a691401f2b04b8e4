// A last hop traced by the official Node X-Ray SDK (aws-xray-sdk-core + aws-xray-sdk-express).
//
// Usage: node node_callee.js <daemon host:port>     (NODE_PATH must reach the packages)
//
// Listens on an ephemeral loopback port and prints "PORT <n>" once it accepts connections.
// GET /echo answers, as JSON, with the X-Amzn-Trace-Id header it received. Its segments
// ("node-callee") go over UDP to the given daemon address.
'use strict';

const AWSXRay = require('aws-xray-sdk-core');
const xrayExpress = require('aws-xray-sdk-express');
const express = require('express');

AWSXRay.setDaemonAddress(process.argv[2]);
AWSXRay.setContextMissingStrategy('IGNORE_ERROR');
// No centralized sampling (the test's daemon does not serve the sampling API) and a local
// rule that samples everything: requests without a decision, or with Sampled=?, are sampled.
AWSXRay.middleware.disableCentralizedSampling();
AWSXRay.middleware.setSamplingRules({
  version: 2,
  default: { fixed_target: 1000, rate: 1.0 },
  rules: [],
});

const app = express();
app.use(xrayExpress.openSegment('node-callee'));
app.get('/echo', (req, res) => {
  res.json({ received_trace_header: req.headers['x-amzn-trace-id'] || null });
});
app.use(xrayExpress.closeSegment());

const server = app.listen(0, '127.0.0.1', () => {
  console.log(`PORT ${server.address().port}`);
});
