// A workflow's graph, drawn from GET /api/workflows/{id}'s stepGraph as nested boxes: a
// sequence top to bottom, parallel and branch side by side, loops and foreach framed.
import { h, schemaOf } from "./dom.js";

/** What kind of step ``id`` is, for its badge: agent, workflow, map or plain. */
export function stepKind(info, id) {
  const step = info.allSteps?.[id] || info.steps?.[id] || {};
  if (schemaOf(step.outputSchema)?.title === "AgentOutput") return "agent";
  if (step.isWorkflow) return "workflow";
  if (id.startsWith("mapping_")) return "map";
  return "step";
}

function stepBox(info, id) {
  const kind = stepKind(info, id);
  const step = info.allSteps?.[id] || info.steps?.[id] || {};
  const label = kind === "map" ? "map" : id;
  const box = h(
    "div",
    { class: `node ${kind}`, dataset: { step: id, state: "idle" }, title: step.description || id },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "name" }, label),
    kind !== "step" ? h("span", { class: "badge" }, kind) : null,
    h("span", { class: "state" }),
  );
  if (kind !== "workflow") return box;
  // A nested workflow: its own steps (from allSteps, "parent.child") expand in place.
  const inner = Object.keys(info.allSteps || {}).filter(
    (key) => key.startsWith(`${id}.`) && !key.slice(id.length + 1).includes("."),
  );
  const details = h(
    "details",
    { class: "nested" },
    h("summary", {}, box),
    h("div", { class: "seq" }, inner.map((key) => stepBox(info, key))),
  );
  return details;
}

function entry(info, node) {
  switch (node.type) {
    case "step":
      return stepBox(info, node.step.id);
    case "parallel":
      return h("div", { class: "group parallel" }, h("span", { class: "tag" }, "parallel"),
        h("div", { class: "row" }, node.steps.map((s) => entry(info, s))));
    case "conditional":
      return h("div", { class: "group branch" }, h("span", { class: "tag" }, "branch"),
        h("div", { class: "row" }, node.steps.map((s, i) =>
          h("div", { class: "arm" },
            h("span", { class: "cond" }, node.serializedConditions?.[i]?.fn || "when"),
            entry(info, s)))));
    case "loop":
      return h("div", { class: "group loop" }, h("span", { class: "tag" }, node.loopType),
        stepBox(info, node.step.id));
    case "foreach":
      return h("div", { class: "group foreach" },
        h("span", { class: "tag" }, `foreach ×${node.opts?.concurrency ?? 1}`),
        stepBox(info, node.step.id));
    default:
      return h("div", { class: "node" }, node.type);
  }
}

/** The graph of ``info`` (a WorkflowInfo) as an element. */
export function drawGraph(info) {
  return h("div", { class: "graph seq", role: "list", "aria-label": "Workflow graph" },
    (info.stepGraph || []).map((node) => h("div", { role: "listitem" }, entry(info, node))));
}

/** Mark step ``id`` of a drawn graph with ``state`` (running, success, failed, ...). */
export function markStep(graph, id, state) {
  for (const node of graph.querySelectorAll(".node")) {
    if (node.dataset.step === id || node.dataset.step?.endsWith(`.${id}`)) {
      node.dataset.state = state;
      node.querySelector(".state").textContent = state;
    }
  }
}
