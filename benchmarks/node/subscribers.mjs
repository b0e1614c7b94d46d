// Many WebSocket subscribers to one URL: counts delivered benchmark events and their latency.
//
// Usage: node subscribers.mjs --url ws://127.0.0.1:P/ws/tasks/T --count 1000 --run 3
//                             [--deadline 120] [--concurrency 200]
//
// Protocol with the driver (benchmarks/fanout.py), one JSON object per line:
//   stdout  {"type":"ready", connected, failed, retries, refused, connect_ms}   when every socket
//                          is open and has received its first frame (or failed); refused counts
//                          the sockets closed with 4401/4403 (not signed in, forbidden) by code
//   stdin   start    marks the start of the measured window (CPU time and clock baseline)
//   stdin   status   -> stdout {"type":"status", delivered, closed}
//   stdin   stop     -> stdout {"type":"summary", ...}, then every socket is dropped and we exit
// The summary is also printed (and the process exits) when the deadline passes.
//
// When TASKLINE_TOKEN is set (and not empty), every upgrade carries
// "Authorization: Bearer <token>" (a server that checks who asks closes a socket without one
// with 4401). The driver passes the token in the environment, not on the command line.
//
// A benchmark event carries `"bm":[run, k, t]` in its data: run id, publisher sequence number
// and the publish time in ms since the epoch (the publisher's time.time() * 1000). A frame may
// be one envelope or a JSON array of envelopes (Taskline's ?batch=1): every "bm" marker in it is
// one delivery. Order is judged by the envelope's server-assigned "seq" (the nearest "seq"
// before the marker): a seq not above the last one received on that socket is a duplicate or an
// out-of-order delivery (publish order k is not used: concurrent POSTs may commit in any order). Finding markers in the raw bytes instead of parsing JSON keeps this client
// cheap, so it is not the bottleneck; frames without a marker (connection_established,
// heartbeats) are counted as frames only. Latency = receive time - t, on the same machine clock.

import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

function parseArgs(argv) {
  const options = { url: "", count: 1000, run: 0, deadline: 120, concurrency: 200 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in options)) throw new Error(`unknown option ${argv[i]}`);
    options[key] = key === "url" ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!options.url) throw new Error("--url is required");
  return options;
}

const options = parseArgs(process.argv);
const token = (process.env.TASKLINE_TOKEN ?? "").trim();
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const MARK = Buffer.from('"bm"');
const SEQ = Buffer.from('"seq"');
const OPEN_BRACKET = 0x5b;

// Latency histogram: 0.1 ms buckets below 1 s, 10 ms buckets from 1 s to 120 s.
const FINE = 10_000;
const COARSE = 11_900;
const histogram = new Uint32Array(FINE + COARSE + 1);

function record(latencyMs) {
  const ms = latencyMs < 0 ? 0 : latencyMs;
  let index;
  if (ms < 1000) index = Math.floor(ms * 10);
  else index = Math.min(FINE + Math.floor((ms - 1000) / 10), FINE + COARSE);
  histogram[index] += 1;
}

function bucketValue(index) {
  return index < FINE ? (index + 0.5) / 10 : 1000 + (index - FINE + 0.5) * 10;
}

function percentile(fraction, total) {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(fraction * total));
  let seen = 0;
  for (let i = 0; i < histogram.length; i += 1) {
    seen += histogram[i];
    if (seen >= rank) return bucketValue(i);
  }
  return bucketValue(histogram.length - 1);
}

const now = () => performance.timeOrigin + performance.now();

const stats = {
  delivered: 0,
  stale: 0, // benchmark events of another run
  frames: 0,
  outOfOrder: 0,
  duplicates: 0,
  latencySum: 0,
  latencyMax: 0,
  firstMs: null,
  lastMs: null,
};
const closes = {}; // close code -> count, for sockets closed by the server before "stop"
let stopping = false;
let windowStart = { ms: now(), cpu: process.cpuUsage() };
// Per second of the window (from "start"): deliveries and the worst latency seen.
const newTimeline = () => Array.from({ length: 600 }, () => ({ delivered: 0, maxLatency: 0 }));
let timeline = newTimeline();

// Reads the JSON number at data[i] (after any spaces or one comma); leaves `cursor` after it.
// Numbers here are plain decimals (no exponent): run ids, counters, epoch milliseconds.
let cursor = 0;
function readNumber(data, start) {
  let i = start;
  while (data[i] === 0x20 || data[i] === 0x2c) i += 1;
  const negative = data[i] === 0x2d;
  if (negative) i += 1;
  let value = 0;
  while (data[i] >= 0x30 && data[i] <= 0x39) {
    value = value * 10 + (data[i] - 0x30);
    i += 1;
  }
  if (data[i] === 0x2e) {
    i += 1;
    let scale = 0.1;
    while (data[i] >= 0x30 && data[i] <= 0x39) {
      value += (data[i] - 0x30) * scale;
      scale /= 10;
      i += 1;
    }
  }
  cursor = i;
  return negative ? -value : value;
}

// The value of the nearest "seq" key before `end` in a frame (-1 if none or not a number).
function seqBefore(data, end) {
  const key = data.lastIndexOf(SEQ, end);
  if (key === -1) return -1;
  let i = data.indexOf(0x3a, key + SEQ.length) + 1; // ':'
  while (data[i] === 0x20) i += 1;
  let value = 0;
  let digits = 0;
  while (data[i] >= 0x30 && data[i] <= 0x39) {
    value = value * 10 + (data[i] - 0x30);
    i += 1;
    digits += 1;
  }
  return digits ? value : -1;
}

class Subscriber {
  constructor() {
    this.lastSeq = -1;
    this.delivered = 0;
    this.established = false;
    this.socket = null;
  }

  onMessage(data) {
    const received = now();
    stats.frames += 1;
    if (!this.established) {
      this.established = true;
      onEstablished();
    }
    let position = data.indexOf(MARK);
    while (position !== -1) {
      const open = data.indexOf(OPEN_BRACKET, position + MARK.length);
      if (open === -1) break;
      const run = readNumber(data, open + 1);
      readNumber(data, cursor); // k: publish order, not used (see the header)
      const sent = readNumber(data, cursor);
      position = data.indexOf(MARK, cursor);
      if (run !== options.run) {
        stats.stale += 1;
        continue;
      }
      const latency = received - sent;
      const seq = seqBefore(data, open);
      if (seq === this.lastSeq) stats.duplicates += 1;
      else if (seq < this.lastSeq) stats.outOfOrder += 1;
      else this.lastSeq = seq;
      this.delivered += 1;
      stats.delivered += 1;
      stats.latencySum += latency;
      if (latency > stats.latencyMax) stats.latencyMax = latency;
      const second = Math.floor((received - windowStart.ms) / 1000);
      if (second >= 0 && second < timeline.length) {
        timeline[second].delivered += 1;
        if (latency > timeline[second].maxLatency) timeline[second].maxLatency = latency;
      }
      if (stats.firstMs === null) stats.firstMs = received;
      stats.lastMs = received;
      record(latency);
    }
  }
}

const subscribers = [];
let established = 0;
let failed = 0;
let retries = 0; // connection attempts that failed before the first frame and were retried
const refused = {}; // close code (4401, 4403) -> sockets refused by the server, not retried
let attempted = 0;
let pending = 0;
const connectStarted = now();

function onEstablished() {
  established += 1;
  pending -= 1;
  openMore();
  checkReady();
}

function onFailed() {
  failed += 1;
  pending -= 1;
  openMore();
  checkReady();
}

function open(subscriber, attempt) {
  const socket = new WebSocket(options.url, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: 30_000,
    headers,
  });
  subscriber.socket = socket;
  socket.on("message", (data) => subscriber.onMessage(data));
  socket.on("error", () => {}); // "close" follows and handles it
  socket.on("close", (code) => {
    if (stopping) return;
    if (!subscriber.established) {
      if (code === 4401 || code === 4403) {
        refused[code] = (refused[code] ?? 0) + 1;
        onFailed();
      }
      else if (attempt < 3) {
        retries += 1;
        setTimeout(() => open(subscriber, attempt + 1), 100 * (attempt + 1));
      }
      else onFailed();
      return;
    }
    closes[code] = (closes[code] ?? 0) + 1;
  });
}

function openMore() {
  while (pending < options.concurrency && attempted < options.count) {
    const subscriber = new Subscriber();
    subscribers.push(subscriber);
    attempted += 1;
    pending += 1;
    open(subscriber, 0);
  }
}

let ready = false;
function checkReady() {
  if (ready || established + failed < options.count) return;
  ready = true;
  emit({
    type: "ready",
    connected: established,
    failed,
    retries,
    refused,
    connect_ms: Math.round(now() - connectStarted),
  });
}

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function summary() {
  const cpu = process.cpuUsage(windowStart.cpu);
  const perSubscriber = subscribers.filter((s) => s.established).map((s) => s.delivered);
  const round = (value) => (value === null ? null : Math.round(value * 100) / 100);
  return {
    type: "summary",
    run: options.run,
    subscribers: perSubscriber.length,
    failed,
    delivered: stats.delivered,
    stale: stats.stale,
    frames: stats.frames,
    out_of_order: stats.outOfOrder,
    duplicates: stats.duplicates,
    closes,
    min_per_subscriber: perSubscriber.length ? Math.min(...perSubscriber) : 0,
    max_per_subscriber: perSubscriber.length ? Math.max(...perSubscriber) : 0,
    latency_ms: {
      p50: round(percentile(0.5, stats.delivered)),
      p90: round(percentile(0.9, stats.delivered)),
      p95: round(percentile(0.95, stats.delivered)),
      p99: round(percentile(0.99, stats.delivered)),
      max: round(stats.delivered ? stats.latencyMax : null),
      mean: round(stats.delivered ? stats.latencySum / stats.delivered : null),
    },
    first_receipt_ms: stats.firstMs,
    last_receipt_ms: stats.lastMs,
    window_ms: round(now() - windowStart.ms),
    timeline: timeline
      .slice(0, Math.ceil((now() - windowStart.ms) / 1000))
      .map((t) => [t.delivered, round(t.maxLatency)]),
    cpu_user_ms: round(cpu.user / 1000),
    cpu_system_ms: round(cpu.system / 1000),
    rss_mb: round(process.memoryUsage().rss / 1048576),
  };
}

function stop() {
  if (stopping) return;
  stopping = true;
  emit(summary());
  for (const subscriber of subscribers) subscriber.socket?.terminate();
  setTimeout(() => process.exit(0), 50);
}

process.stdout.on("error", () => process.exit(0)); // the driver went away
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = line.trim();
  if (command === "start") {
    windowStart = { ms: now(), cpu: process.cpuUsage() };
    timeline = newTimeline();
  } else if (command === "status") {
    const closed = Object.values(closes).reduce((a, b) => a + b, 0);
    emit({ type: "status", delivered: stats.delivered, closed });
  } else if (command === "stop") {
    stop();
  }
});
commands.on("close", stop);
setTimeout(stop, options.deadline * 1000).unref();
// Keep the process alive until stop even if every socket fails.
const keepAlive = setInterval(() => {}, 60_000);
process.on("exit", () => clearInterval(keepAlive));

openMore();
