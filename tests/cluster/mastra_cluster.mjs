// Drives three stepstream instances with the real @mastra/client-js 0.10.14, a client per
// instance (used by tests/cluster/test_cluster.py).
//
// Env: CLIENT_DIR (where node_modules holds @mastra/client-js), URLS (JSON list of three base
// URLs), PLAN (JSON: per case, the indexes in URLS of its creator, its starter and a third
// instance, drawn at random by the test), MARKS (the directory whose go-<runId> files open
// the `gate` step), REPORT (a file).
// Each run is created through its creator and started through its starter (which executes
// it); it is watched, canceled, resumed or sent an event through the others.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const env = process.env;
const entry = join(env.CLIENT_DIR, "node_modules/@mastra/client-js/dist/index.js");
const { MastraClient } = await import(pathToFileURL(entry).href);

// The server subscribes a watch before answering: once its headers are here, the watch sees
// everything that follows.
let watchOpened;
let watchOpen;
const expectWatch = () => (watchOpen = new Promise((resolve) => (watchOpened = resolve)));
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const response = await realFetch(url, init);
  if (String(url).includes("/watch?")) watchOpened();
  return response;
};

const clients = JSON.parse(env.URLS).map((baseUrl) => new MastraClient({ baseUrl, retries: 0 }));
const plan = JSON.parse(env.PLAN);
const roles = (name) => plan[name].map((i) => clients[i]);
const open = (runId) => writeFileSync(join(env.MARKS, `go-${runId}`), "");
const report = {};

// 1. watched through a third instance from before its start to its end
{
  const [creator, starter, third] = roles("watched");
  const { runId } = await creator.getWorkflow("gated").createRun();
  expectWatch();
  const records = [];
  const watching = third.getWorkflow("gated").watch({ runId }, (record) => records.push(record));
  await Promise.race([watchOpen, watching]);
  await starter.getWorkflow("gated").start({ runId, inputData: {} });
  open(runId);
  await watching;
  const result = await creator.getWorkflow("gated").runExecutionResult(runId);
  report.watched = { runId, records, result };
}

// 2. canceled through a third instance while it waits in its gate
{
  const [creator, starter, third] = roles("canceled");
  const { runId } = await creator.getWorkflow("gated").createRun();
  await starter.getWorkflow("gated").start({ runId, inputData: {} });
  const answer = await third.getWorkflow("gated").cancelRun(runId);
  const result = await creator.getWorkflow("gated").runExecutionResult(runId);
  report.canceled = { runId, answer, result };
}

// 3. an event sent through the creator while the run is still in its gate, watched through
// a third instance
{
  const [creator, starter, third] = roles("evented");
  const { runId } = await creator.getWorkflow("evented").createRun();
  await starter.getWorkflow("evented").start({ runId, inputData: {} });
  const answer = await creator.getWorkflow("evented").sendRunEvent({ runId, event: "go", data: { x: 1 } });
  expectWatch();
  const records = [];
  const watching = third.getWorkflow("evented").watch({ runId }, (record) => records.push(record));
  await Promise.race([watchOpen, watching]);
  open(runId);
  await watching;
  const result = await creator.getWorkflow("evented").runExecutionResult(runId);
  report.evented = { runId, answer, records, result };
}

// 4. suspended by startAsync through the starter, resumed (resumeAsync) through a third
{
  const [creator, starter, third] = roles("resumed");
  const { runId } = await creator.getWorkflow("approval").createRun();
  const suspended = await starter.getWorkflow("approval").startAsync({ runId, inputData: {} });
  const resumed = await third
    .getWorkflow("approval")
    .resumeAsync({ runId, step: "approve", resumeData: { by: 9 } });
  const result = await creator.getWorkflow("approval").runExecutionResult(runId);
  report.resumed = { runId, suspended, resumed, result };
}

// 5. started and streamed through the starter; its gate opened once `first` has ended
{
  const [creator, starter] = roles("streamed");
  const { runId } = await creator.getWorkflow("gated").createRun();
  const stream = await starter.getWorkflow("gated").stream({ runId, inputData: {} });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    if (chunk.type === "step-result" && chunk.payload.id === "first") open(runId);
  }
  report.streamed = { runId, chunks };
}

writeFileSync(env.REPORT, JSON.stringify(report));
