// Drives the official AG-UI JavaScript client (@ag-ui/client HttpAgent) against Taskline.
//
//   node run_agent.mjs run   <url> <threadId> <user message>   POST RunAgentInput, runAgent()
//   node run_agent.mjs watch <url> <threadId>                  GET the watch stream instead
//   node run_agent.mjs runs  <url> <threadId> <message>...     one HttpAgent, one runAgent()
//                                                              per message, on the same thread
//   node run_agent.mjs interrupt <url> <threadId> <message> <payload JSON>
//        runAgent(); while the run ended with interrupts (agent.pendingInterrupts), runAgent()
//        again with a resume entry answering each ("resolved" with the payload), at most 5 runs
//
// Prints one JSON object on stdout: the events the client accepted (after its schema stage
// and verifier), its final state and messages, the run result, the console warnings and
// errors it logged, and the error that made runAgent() reject (null when it resolved).
import { HttpAgent } from "@ag-ui/client";

const [mode, url, threadId, text, ...more] = process.argv.slice(2);
const warnings = [];
const errors = [];
const keep = (list) => (...args) => list.push(args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" "));
console.warn = keep(warnings);
console.error = keep(errors);
console.log = keep(warnings); // the client never logs on the happy path

// HttpAgent only POSTs; the watch endpoint is a GET without a body.
class WatchAgent extends HttpAgent {
  requestInit() {
    return { method: "GET", headers: { Accept: "text/event-stream" }, signal: this.abortController.signal };
  }
}

const Agent = mode === "watch" ? WatchAgent : HttpAgent;
const agent = new Agent({
  url,
  threadId,
  initialMessages: text ? [{ id: "user-1", role: "user", content: text }] : [],
});
const events = [];
let outcome = null;
let failure = null;
const runs = [];  // mode "runs": each run's event types, result and failure
const timer = setTimeout(() => { failure = "timeout"; agent.abortRun(); }, 60_000);
const messages = mode === "runs" ? [text, ...more] : mode === "interrupt" ? [null, null, null, null, null] : [null];
for (const [index, message] of messages.entries()) {
  if (message !== null && index > 0) {
    agent.addMessage({ id: `user-${index + 1}`, role: "user", content: message });
  }
  const pending = agent.pendingInterrupts ?? [];
  if (mode === "interrupt" && index > 0 && pending.length === 0) break;
  const parameters = mode === "interrupt" && index > 0
    ? { resume: pending.map((i) => ({ interruptId: i.id, status: "resolved", payload: JSON.parse(more[0]) })) }
    : {};
  const before = events.length;
  let runFailure = null;
  try {
    outcome = await agent.runAgent(parameters, { onEvent: ({ event }) => { events.push(event); } });
  } catch (error) {
    runFailure = error instanceof Error ? error.message : String(error);
    failure = failure ?? runFailure;
  }
  const mine = events.slice(before);
  const last = mine[mine.length - 1];
  runs.push({
    events: mine.map((e) => e.type),
    runId: mine[0]?.runId ?? null,
    outcome: last?.outcome ?? null,
    resume: parameters.resume ?? null,
    result: outcome ? outcome.result ?? null : null,
    failure: runFailure,
  });
}
clearTimeout(timer);
process.stdout.write(JSON.stringify({
  runs,
  events: events.map((e) => e.type),
  first: events[0] ?? null,
  last: events[events.length - 1] ?? null,
  state: agent.state,
  messages: agent.messages,
  result: outcome ? outcome.result ?? null : null,
  warnings,
  errors,
  failure,
}) + "\n");
