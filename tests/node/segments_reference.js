#!/usr/bin/env node
/*
 * Test helper for tests/test_segments.py.
 *
 * Reads a JSON array of strings on stdin and writes, for each, a JSON object
 *   {reference: {encoding, segments, units}, ours: <static/segments.js count()>}
 * on stdout. "reference" is Twilio's calculator (npm sms-segments-calculator,
 * pinned in package.json; install with `npm ci --prefix tests/node`).
 */
"use strict";

const path = require("path");
const { SegmentedMessage } = require("sms-segments-calculator");
const ours = require(path.join(__dirname, "..", "..", "static", "segments.js"));

function reference(text) {
  const message = new SegmentedMessage(text); // encoding "auto", no smart encoding
  const encoding = message.getEncodingName();
  // messageSize is the payload in bits without headers; dividing by the unit
  // size gives septets (GSM-7) or UTF-16 code units (UCS-2).
  const bitsPerUnit = encoding === "GSM-7" ? 7 : 16;
  return {
    encoding,
    segments: message.segmentsCount,
    units: message.messageSize / bitsPerUnit,
  };
}

function main() {
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    const texts = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const results = texts.map((text) => ({ reference: reference(text), ours: ours.count(text) }));
    process.stdout.write(JSON.stringify(results));
  });
}

main();
