// Drives a Mastra-compatible server with the real @mastra/client-js 0.10.14
// (used by tests/server/test_mastra_client.py).
//
// Env: MASTRA_BASE_URL, MASTRA_WORKFLOW_ID, MASTRA_INPUT (JSON);
// optional: MASTRA_RUN_ID, MASTRA_RUNTIME_CONTEXT (JSON),
//   MASTRA_RESUME (JSON {step, resumeData}: resumeAsync once `step-suspended` arrives),
//   MASTRA_WATCH=1 (watch the run, opened before the stream starts),
//   MASTRA_REPORT (a file: gets {"runId", "resumeAsync"?, "watch"?} as JSON).
// Stdout: every chunk of Workflow.stream(), one JSON line each, and nothing else.
import { writeFileSync } from "node:fs";
import { MastraClient } from "@mastra/client-js";

const env = process.env;
const json = (name) => (env[name] ? JSON.parse(env[name]) : undefined);

// The client calls the global fetch; note when the watch response's headers arrive, since the
// server subscribes to the run before answering: then the stream can start without a race.
let watchOpened;
const watchOpen = new Promise((resolve) => (watchOpened = resolve));
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const response = await realFetch(url, init);
  if (String(url).includes("/watch?")) watchOpened();
  return response;
};

const client = new MastraClient({ baseUrl: env.MASTRA_BASE_URL, retries: 0 });
const workflow = client.getWorkflow(env.MASTRA_WORKFLOW_ID);
const { runId } = await workflow.createRun({ runId: env.MASTRA_RUN_ID });
const report = { runId };

let watching;
if (env.MASTRA_WATCH) {
  report.watch = [];
  watching = workflow.watch({ runId }, (record) => report.watch.push(record));
  await Promise.race([watchOpen, watching]);
}

const resume = json("MASTRA_RESUME");
let resuming;
const stream = await workflow.stream({
  runId,
  inputData: json("MASTRA_INPUT"),
  runtimeContext: json("MASTRA_RUNTIME_CONTEXT"),
});
for await (const chunk of stream) {
  process.stdout.write(JSON.stringify(chunk) + "\n");
  if (resume && chunk.type === "step-suspended" && !resuming) {
    // The stream stays open across the suspension and carries the resumed run's chunks.
    resuming = workflow.resumeAsync({ runId, ...resume });
  }
}
if (resuming) report.resumeAsync = await resuming;
if (watching) await watching;
if (env.MASTRA_REPORT) writeFileSync(env.MASTRA_REPORT, JSON.stringify(report));
