// One run, live: its graph with each step's state, the event timeline, each step's input,
// output, error and timing, an agent's answer token by token with its usage, and the actions
// (resume, send an event, cancel). Events come from follow() (SSE, resumed after a drop).
import { api, follow, runPath, workflowPath } from "./api.js";
import { duration, h, pretty, schemaOf, fill } from "./dom.js";
import { schemaForm } from "./form.js";
import { drawGraph, markStep, stepKind } from "./graph.js";
import { Timeline } from "./timeline.js";

const ENDED = ["success", "failed", "canceled"];
const SHOWN = 20_000; // characters of a streaming answer on screen
const CLIP = 50_000; // characters of a step's input or output on screen

/** ``text`` cut to CLIP characters, saying how much was left out (pick the event for all). */
function clip(text) {
  if (text.length <= CLIP) return text;
  return `${text.slice(0, CLIP)}\n… ${text.length - CLIP} more characters: pick its event below for all of it`;
}

export async function runPage(main, key, runId) {
  const [info, stored] = await Promise.all([api(workflowPath(key)), api(runPath(key, runId))]);
  const graph = drawGraph(info);
  const steps = new Map(); // step id -> {card, input, output, error, text, usage, ...}
  const status = h("span", { class: "status", id: "run-status" });
  const link = h("span", { class: "link muted small", id: "link-state" });
  const actions = h("div", { class: "actions", id: "actions" });
  const stepList = h("div", { class: "steps", id: "steps" });
  const detail = h("pre", { class: "event-detail", "aria-live": "off" }, "Pick an event to see it whole.");
  const timeline = new Timeline((event) => {
    detail.textContent = pretty(event.data);
  });
  timeline.element.id = "timeline";
  const forkedFrom = stored.snapshot.forkedFrom; // a time-travel fork: {runId, stepId}
  let runStatus = stored.snapshot.status;
  let suspended = stored.snapshot.suspended || [];
  let waitingFor = ""; // the event a waiting step waits for

  const setStatus = (value) => {
    runStatus = value;
    stepList.dataset.run = value; // time travel is offered once the run is not executing
    status.textContent = value;
    status.className = `status ${value}`;
    status.dataset.status = value;
    drawActions();
  };

  const card = (id) => {
    if (steps.has(id)) return steps.get(id);
    const kind = stepKind(info, id);
    const parts = {
      state: h("span", { class: "status" }, "pending"),
      origin: h("span", { class: "origin muted small" }),
      travel: h("div", { class: "travel" }),
      time: h("span", { class: "muted small" }),
      input: h("pre", {}),
      output: h("pre", {}),
      error: h("pre", { class: "error", hidden: true }),
      text: kind === "agent" ? h("pre", { class: "agent-text", "aria-live": "polite", dataset: { step: id } }) : null,
      usage: kind === "agent" ? h("p", { class: "usage muted small" }) : null,
      calls: kind === "agent" ? h("ul", { class: "calls" }) : null,
    };
    const element = h("details", { class: `step-card ${kind}`, open: true, dataset: { step: id } },
      h("summary", {}, h("strong", {}, kind === "map" ? `map (${id.slice(8, 16)})` : id), " ", parts.state, " ", parts.time, " ", parts.origin),
      parts.text ? h("div", {}, h("h4", {}, "Answer"), parts.text, parts.usage, parts.calls) : null,
      h("div", { class: "io" },
        h("div", {}, h("h4", {}, "Input"), parts.input),
        h("div", {}, h("h4", {}, "Output"), parts.output, parts.error)),
      parts.travel);
    const entry = { ...parts, element, started: null, payload: undefined };
    steps.set(id, entry);
    if (info.steps?.[id]) drawTravel(entry, id, kind); // time travel starts at a top-level step
    stepList.append(element);
    return entry;
  };

  const setStep = (id, state) => {
    const entry = card(id);
    entry.state.textContent = state;
    entry.state.className = `status ${state}`;
    markStep(graph, id, state);
  };

  // Tokens are written once a frame: many may arrive between two paints, and scrolling the
  // answer to its end after each would force a layout per token.
  const unpainted = new Map(); // step entry -> text not yet on screen
  const paint = () => {
    for (const [entry, text] of unpainted) {
      entry.full += text;
      // Only the answer's last SHOWN characters are laid out: a longer text would cost a
      // layout of all of it at every frame (the whole answer is the step's output).
      entry.textNode.data = entry.full.length > SHOWN ? `…${entry.full.slice(-SHOWN)}` : entry.full;
      entry.text.scrollTop = entry.text.scrollHeight;
      entry.text.dataset.length = String(entry.full.length); // all of it, shown or not
    }
    unpainted.clear();
  };
  const stream = (entry, delta) => {
    if (!entry.text) return;
    if (!entry.textNode) {
      entry.textNode = entry.text.appendChild(document.createTextNode(""));
      entry.full = "";
    }
    if (unpainted.size === 0) requestAnimationFrame(paint);
    unpainted.set(entry, (unpainted.get(entry) || "") + delta);
  };

  const onEvent = ({ id: seq, type, data }) => {
    timeline.push({ id: seq, type, data });
    const p = data.payload || {};
    switch (type) {
      case "start":
        if (!ENDED.includes(runStatus)) setStatus("running");
        break;
      case "step-start": {
        const entry = card(p.id);
        entry.started = p.startedAt;
        entry.payload = p.payload;
        entry.origin.textContent = "";
        delete entry.element.dataset.origin;
        entry.input.textContent = clip(pretty(p.payload));
        setStep(p.id, "running");
        if (runStatus !== "running" && !ENDED.includes(runStatus)) setStatus("running");
        break;
      }
      case "tool-call-streaming-start":
        card(data.toolName);
        break;
      case "tool-call-delta":
        stream(card(data.toolName), data.argsTextDelta);
        break;
      case "tool-call":
      case "tool-result": {
        const entry = [...steps.values()].reverse().find((s) => s.calls);
        entry?.calls.append(h("li", {}, `${type} ${data.toolName || ""} `, h("code", {}, JSON.stringify(type === "tool-call" ? data.args : data.result))));
        break;
      }
      case "step-usage": {
        const entry = card(p.id);
        if (entry.usage) entry.usage.textContent = `${p.totalTokens} tokens (${p.inputTokens} in, ${p.outputTokens} out) · ${p.model}${p.cost != null ? ` · cost ${p.cost}` : ""}`;
        break;
      }
      case "step-result": {
        paint();
        const entry = card(p.id);
        if (p.output !== undefined) entry.output.textContent = clip(pretty(p.output));
        if (p.error) {
          entry.error.textContent = String(p.error);
          entry.error.hidden = false;
        }
        if (entry.started && p.endedAt) entry.time.textContent = duration(p.endedAt - entry.started);
        setStep(p.id, p.status);
        break;
      }
      case "step-suspended": {
        const entry = card(p.id);
        entry.output.textContent = `suspended: ${pretty(p.suspendPayload)}`;
        // A wait_for_event step suspends with {event: name}: it waits for that event.
        waitingFor = typeof p.suspendPayload?.event === "string" ? p.suspendPayload.event : "";
        setStep(p.id, waitingFor ? "waiting" : "suspended");
        suspended = [[p.id]];
        setStatus("suspended");
        break;
      }
      case "finish":
        api(runPath(key, runId)).then((run) => setStatus(run.snapshot.status)).catch(() => {});
        break;
      default:
        break;
    }
  };

  const act = async (path, body, button) => {
    button.disabled = true;
    try {
      await api(path, { method: "POST", body });
      const fresh = await api(runPath(key, runId));
      if (!ENDED.includes(runStatus)) setStatus(fresh.snapshot.status);
    } catch (problem) {
      actions.querySelector(".error").textContent = problem.message;
      actions.querySelector(".error").hidden = false;
    } finally {
      button.disabled = false;
    }
  };

  // Time travel: fork this stored run at a step into a new run (POST .../time-travel) and go
  // there; the step's input may be edited (JSON), and agents may replay their recorded answers.
  function drawTravel(entry, id, kind) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const input = kind === "map" ? null : h("textarea", { class: "json", rows: 4, "aria-label": `Input of ${id}` });
    const replay = h("input", { type: "checkbox" });
    const button = h("button", { type: "submit", class: "primary" }, "Fork run");
    const form = h("form", { class: "action", hidden: true, onsubmit: async (e) => {
      e.preventDefault();
      const body = { step: id, replayModels: replay.checked };
      if (input && input.value.trim() !== pretty(entry.payload)) {
        try {
          body.inputData = JSON.parse(input.value);
        } catch (problem) {
          error.textContent = `the input is not JSON: ${problem.message}`;
          error.hidden = false;
          return;
        }
      }
      button.disabled = true;
      try {
        const fork = await api(`${runPath(key, runId)}/time-travel`, { method: "POST", body });
        location.hash = `#/runs/${encodeURIComponent(key)}/${encodeURIComponent(fork.runId)}`;
      } catch (problem) {
        error.textContent = problem.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    } },
      h("h3", {}, `Time travel from ${kind === "map" ? "this map" : id}`),
      h("p", { class: "muted small" }, "A new run keeps the steps before this one as stored and runs again from here."),
      input ? h("div", {}, h("h4", {}, "Input"), input) : null,
      h("label", { class: "inline" }, replay, "Replay recorded model answers (no model calls)"),
      button, error);
    const open = h("button", { type: "button", class: "time-travel", onclick: () => {
      form.hidden = !form.hidden;
      if (!form.hidden && input) input.value = pretty(entry.payload);
    } }, "Time travel from here");
    entry.travel.append(open, form);
  }

  function drawActions() {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const out = [];
    if (runStatus === "suspended" && suspended.length) {
      const path = suspended[0];
      const stepId = path[path.length - 1];
      const schema = schemaOf((info.allSteps?.[path.join(".")] || info.steps?.[stepId] || {}).resumeSchema);
      const form = schemaForm(schema);
      const button = h("button", { type: "submit", class: "primary" }, "Resume");
      out.push(h("form", { id: "resume-form", class: "action", onsubmit: (e) => {
        e.preventDefault();
        let data;
        try {
          data = form.value();
        } catch (problem) {
          error.textContent = problem.message;
          error.hidden = false;
          return;
        }
        act(`${workflowPath(key)}/resume?runId=${encodeURIComponent(runId)}`, { step: path.length > 1 ? path : stepId, resumeData: data }, button);
      } }, h("h3", {}, `Resume ${stepId}`), form.element, button));
    }
    if (!ENDED.includes(runStatus)) {
      const name = h("input", { id: "event-name", type: "text", required: true, placeholder: "event name", value: waitingFor });
      const data = h("textarea", { id: "event-data", class: "json", rows: 2, placeholder: "data (JSON, optional)" });
      const send = h("button", { type: "submit" }, "Send event");
      out.push(h("form", { class: "action", onsubmit: (e) => {
        e.preventDefault();
        let value = null;
        try {
          value = data.value.trim() ? JSON.parse(data.value) : null;
        } catch (problem) {
          error.textContent = `the event's data is not JSON: ${problem.message}`;
          error.hidden = false;
          return;
        }
        act(`${runPath(key, runId)}/send-event`, { event: name.value, data: value }, send);
      } }, h("h3", {}, "Send an event"), h("label", { for: "event-name" }, "Event"), name, data, send));
      const cancel = h("button", { id: "cancel", class: "danger", onclick: () => act(`${runPath(key, runId)}/cancel`, undefined, cancel) }, "Cancel run");
      out.push(h("div", { class: "action" }, cancel));
    }
    actions.replaceChildren(...out, error);
  }

  fill(main, 
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ", h("a", { href: `#/workflows/${encodeURIComponent(key)}` }, key), " / ", runId),
    h("h1", {}, "Run ", h("code", {}, runId.slice(0, 8)), " ", status, " ", link),
    forkedFrom ? h("p", { class: "muted small", id: "forked-from" }, "Forked from run ",
      h("a", { href: `#/runs/${encodeURIComponent(key)}/${encodeURIComponent(forkedFrom.runId)}` }, forkedFrom.runId.slice(0, 8)),
      ` at step ${forkedFrom.stepId}`) : null,
    h("div", { class: "split" },
      h("section", { "aria-label": "Graph" }, h("h2", {}, "Graph"), graph, actions),
      h("section", { "aria-label": "Steps" }, h("h2", {}, "Steps"), stepList)),
    h("section", { "aria-label": "Events" }, h("h2", {}, "Events"), h("div", { class: "events" }, timeline.element, detail)),
  );
  // A fork's steps copied from its source have no events of their own: draw them as stored.
  // They are the records before the step it was forked at (the state keeps their order).
  if (forkedFrom) {
    const at = forkedFrom.stepId;
    for (const [id, record] of Object.entries(stored.snapshot.context || {})) {
      if (id === at || at.startsWith(`${id}.`)) break;
      if (id === "input") continue;
      const entry = card(id);
      entry.payload = record.payload;
      entry.started = record.startedAt;
      entry.input.textContent = clip(pretty(record.payload));
      if (record.output !== undefined) entry.output.textContent = clip(pretty(record.output));
      if (record.error) {
        entry.error.textContent = String(record.error);
        entry.error.hidden = false;
      }
      if (record.endedAt) entry.time.textContent = duration(record.endedAt - record.startedAt);
      entry.origin.textContent = "stored";
      entry.element.dataset.origin = "stored";
      setStep(id, record.status);
    }
  }
  setStatus(runStatus);
  const stop = follow(`${runPath(key, runId)}/events`, onEvent, (state, why) => {
    link.textContent = state === "error" ? `(${why})` : state === "ended" ? "" : `● ${state}`;
    link.dataset.state = state;
  });
  return stop;
}
