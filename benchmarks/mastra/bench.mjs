// Mastra (@mastra/core, pinned in package.json) as a peer of `python -m benchmarks`.
// Reads one JSON request a line on stdin, runs one block, answers one JSON line on stdout:
//   {"shape": "seq" | "fanout" | "concurrent", "n": steps or runs, "runs": runs per block,
//    "steps": steps per run (concurrent)}  ->  {"ok": true, "chunks": n} or {"error": "..."}
// Every run is streamed (run.stream()) and every chunk counted; each run's result is checked.
// Env: MASTRA_CORE_DIR, the folder holding node_modules/@mastra/core and zod.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const require = createRequire(pathToFileURL(process.env.MASTRA_CORE_DIR + "/package.json"));
const { createWorkflow, createStep } = await import(
  pathToFileURL(require.resolve("@mastra/core/workflows")).href
);
const { z } = await import(pathToFileURL(require.resolve("zod")).href);

const any = z.any();
const echo = (id, before) =>
  createStep({
    id,
    inputSchema: any,
    outputSchema: any,
    execute: before
      ? async ({ inputData }) => {
          await before();
          return inputData;
        }
      : async ({ inputData }) => inputData,
  });

function sequence(n, gate) {
  let wf = createWorkflow({ id: `seq${n}${gate ? "g" : ""}`, inputSchema: any, outputSchema: any });
  for (let i = 0; i < n; i++) {
    const before = gate ? (i === 0 ? () => gate.enter() : () => gate.pass()) : undefined;
    wf = wf.then(echo(`s${i}`, before));
  }
  return wf.commit();
}

function fanout(n) {
  const steps = Array.from({ length: n }, (_, i) => echo(`p${i}`));
  return createWorkflow({ id: `fan${n}`, inputSchema: any, outputSchema: any })
    .parallel(steps)
    .commit();
}

// All runs of a concurrent block alive at once: each run's first step checks in, and the
// gate opens once all of them have (as benchmarks/_shapes.py's Gate).
class Gate {
  constructor(n) {
    this.n = n;
    this.count = 0;
    this.opened = new Promise((resolve) => (this.open = resolve));
  }
  enter() {
    this.count += 1;
    if (this.count === this.n) this.open();
    return this.opened;
  }
  pass() {
    return this.opened;
  }
}

async function streamed(wf, input) {
  const run = await wf.createRunAsync();
  const { stream, getWorkflowState } = run.stream({ inputData: input });
  let chunks = 0;
  for await (const _ of stream) chunks += 1;
  const result = await getWorkflowState();
  if (result.status !== "success") throw new Error(`run ended ${result.status}: ${result.error}`);
  return chunks;
}

const cache = new Map();
function workflow(key, make) {
  if (!cache.has(key)) cache.set(key, make());
  return cache.get(key);
}

async function block(req) {
  let chunks = 0;
  if (req.shape === "seq" || req.shape === "fanout") {
    const wf = workflow(`${req.shape}${req.n}`, () =>
      req.shape === "seq" ? sequence(req.n) : fanout(req.n),
    );
    for (let r = 0; r < req.runs; r++) chunks += await streamed(wf, { i: r });
  } else if (req.shape === "concurrent") {
    const gate = new Gate(req.n);
    const wf = sequence(req.steps, gate);
    const all = await Promise.all(Array.from({ length: req.n }, (_, r) => streamed(wf, { i: r })));
    chunks = all.reduce((a, b) => a + b, 0);
  } else {
    throw new Error(`unknown shape ${req.shape}`);
  }
  return chunks;
}

const lines = createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
for await (const line of lines) {
  let answer;
  try {
    answer = { ok: true, chunks: await block(JSON.parse(line)) };
  } catch (err) {
    answer = { error: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
