// The Studio's only door to the server: the documented HTTP API and its Server-Sent Events,
// with the bearer token kept in sessionStorage (gone when the tab closes).

const TOKEN_KEY = "stepstream.token";
// Relative to the page, so the Studio works wherever the app is mounted (/ or /wf/).
const BASE = new URL(".", location.href);

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) =>
    value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  const out = { ...extra };
  const value = token.get();
  if (value) out.Authorization = `Bearer ${value}`;
  return out;
}

/** The JSON answer of one API call; an ApiError carrying the server's message otherwise. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(new URL(path, BASE), init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

const SLICE_MS = 8;

export const workflowPath = (id) => `api/workflows/${encodeURIComponent(id)}`;
export const runPath = (id, runId) => `${workflowPath(id)}/runs/${encodeURIComponent(runId)}`;

/** The frames of an SSE body: {id, type, data}; comments (pings) are dropped. */
export function parseFrame(frame) {
  let id = null;
  let type = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = Number(value);
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { id, type, data: JSON.parse(data.join("\n")) } : null;
}

/**
 * Follow a run's events (GET .../runs/{runId}/events). EventSource cannot send a bearer
 * token, so this reads the stream with fetch; after a drop it reconnects with Last-Event-ID,
 * and an event seen already is skipped, so the caller sees each event once, in order.
 * Returns a function that stops following.
 */
export function follow(path, onEvent, onState) {
  let last = -1;
  let stopped = false;
  let controller = null;
  (async () => {
    let delay = 200;
    while (!stopped) {
      controller = new AbortController();
      let finished = false;
      try {
        const extra = { Accept: "text/event-stream" };
        if (last >= 0) extra["Last-Event-ID"] = String(last);
        const response = await fetch(new URL(path, BASE), {
          headers: headers(extra),
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const why = await response.json().catch(() => ({}));
          onState("error", why.error || response.statusText);
          if (response.status < 500) return;
          throw new Error(why.error);
        }
        onState(last >= 0 ? "resumed" : "live");
        delay = 200;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let slice = performance.now();
        for (;;) {
          // A stored run arrives as fast as the socket goes: give the page a turn every few
          // milliseconds, or reading 100,000 events would be one long task.
          if (performance.now() - slice > SLICE_MS) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            slice = performance.now();
          }
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!event || event.id === null || event.id <= last) continue;
            last = event.id;
            if (event.type === "finish") finished = true;
            onEvent(event);
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      if (finished) {
        onState("ended");
        return;
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
