// Drives three stepstream instances with the real @mastra/client-js 0.10.14, a client per
// instance (used by tests/cluster/test_cluster.py).
//
// Env: CLIENT_DIR (where node_modules holds @mastra/client-js), URLS (JSON list of three base
// URLs), MARKS (the directory whose go-<runId> files open the `gate` step), REPORT (a file).
// Each run is created and started on the first instance and followed or controlled through
// the others: a watch through the second, then a cancel through the second, then an event
// sent through the third while the run is still in its gate on the first.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const env = process.env;
const entry = join(env.CLIENT_DIR, "node_modules/@mastra/client-js/dist/index.js");
const { MastraClient } = await import(pathToFileURL(entry).href);

let watchOpened;
let watchOpen = new Promise((resolve) => (watchOpened = resolve));
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const response = await realFetch(url, init);
  if (String(url).includes("/watch?")) watchOpened();
  return response;
};

const [a, b, c] = JSON.parse(env.URLS).map((baseUrl) => new MastraClient({ baseUrl, retries: 0 }));
const open = (runId) => writeFileSync(join(env.MARKS, `go-${runId}`), "");
const report = {};

// 1. watched through another instance to its end
{
  const { runId } = await a.getWorkflow("gated").createRun();
  await a.getWorkflow("gated").start({ runId, inputData: {} });
  const records = [];
  const watching = b.getWorkflow("gated").watch({ runId }, (record) => records.push(record));
  await Promise.race([watchOpen, watching]);
  open(runId);
  await watching;
  report.watched = { runId, records, result: await c.getWorkflow("gated").runExecutionResult(runId) };
}

// 2. canceled through another instance while it waits in its gate
{
  const { runId } = await a.getWorkflow("gated").createRun();
  await a.getWorkflow("gated").start({ runId, inputData: {} });
  const answer = await b.getWorkflow("gated").cancelRun(runId);
  report.canceled = { runId, answer, result: await c.getWorkflow("gated").runExecutionResult(runId) };
}

// 3. an event sent through a third instance while the run is still in its gate
{
  const { runId } = await a.getWorkflow("evented").createRun();
  await a.getWorkflow("evented").start({ runId, inputData: {} });
  const answer = await c.getWorkflow("evented").sendRunEvent({ runId, event: "go", data: { x: 1 } });
  watchOpen = new Promise((resolve) => (watchOpened = resolve));
  const records = [];
  const watching = b.getWorkflow("evented").watch({ runId }, (record) => records.push(record));
  await Promise.race([watchOpen, watching]);
  open(runId);
  await watching;
  report.evented = { runId, answer, records, result: await a.getWorkflow("evented").runExecutionResult(runId) };
}

writeFileSync(env.REPORT, JSON.stringify(report));
