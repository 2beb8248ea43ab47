// Streams one run with the real @mastra/client-js 0.10.14 and prints
// {"ms": <create-run to end of stream>, "chunks": n, "outputs": [i...] ok?} as JSON.
// Env: MASTRA_CLIENT_JS (the package's dist/index.js), MASTRA_BASE_URL, MASTRA_WORKFLOW_ID.
const { MastraClient } = await import(process.env.MASTRA_CLIENT_JS);
const client = new MastraClient({ baseUrl: process.env.MASTRA_BASE_URL, retries: 0 });
const workflow = client.getWorkflow(process.env.MASTRA_WORKFLOW_ID);
const started = performance.now();
const { runId } = await workflow.createRun({});
const stream = await workflow.stream({ runId, inputData: {} });
let chunks = 0;
let next = 0;
let inOrder = true;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.type === "step-output") {
    if (chunk.payload.output.i !== next) inOrder = false;
    next += 1;
  }
}
const ms = performance.now() - started;
process.stdout.write(JSON.stringify({ ms, chunks, outputs: next, inOrder }) + "\n");
