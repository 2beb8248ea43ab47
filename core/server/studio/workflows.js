// The workflows view: every workflow, and one workflow's graph, input schema and start form.
import { api, workflowPath } from "./api.js";
import { h, pretty, schemaOf, fill } from "./dom.js";
import { schemaForm } from "./form.js";
import { drawGraph } from "./graph.js";

export async function workflowList(main) {
  const all = await api("api/workflows");
  const keys = Object.keys(all).sort();
  fill(main, 
    h("h1", {}, "Workflows"),
    keys.length === 0 ? h("p", { class: "muted" }, "No workflows are served.") : null,
    h("ul", { class: "cards" }, keys.map((key) =>
      h("li", {}, h("a", { class: "card", href: `#/workflows/${encodeURIComponent(key)}` },
        h("strong", {}, key),
        h("span", { class: "muted" }, all[key].description || all[key].name),
        h("span", { class: "muted small" }, `${Object.keys(all[key].steps || {}).length} steps`))))),
  );
}

export async function workflowPage(main, key, go) {
  const info = await api(workflowPath(key));
  const schema = schemaOf(info.inputSchema);
  const form = schemaForm(schema);
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const start = h("button", { type: "submit", class: "primary" }, "Start run");
  const submit = async (e) => {
    e.preventDefault();
    error.hidden = true;
    let input;
    try {
      input = form.value();
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
      return;
    }
    start.disabled = true;
    try {
      const { runId } = await api(`${workflowPath(key)}/create-run`, { method: "POST" });
      await api(`${workflowPath(key)}/start?runId=${encodeURIComponent(runId)}`, { method: "POST", body: { inputData: input } });
      go(`#/runs/${encodeURIComponent(key)}/${encodeURIComponent(runId)}`);
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
    } finally {
      start.disabled = false;
    }
  };
  fill(main, 
    h("p", { class: "crumbs" }, h("a", { href: "#/workflows" }, "Workflows"), " / ", key),
    h("h1", {}, key, " ", h("span", { class: "muted small" }, info.name)),
    info.description ? h("p", {}, info.description) : null,
    h("div", { class: "split" },
      h("section", { "aria-label": "Graph" }, h("h2", {}, "Graph"), drawGraph(info)),
      h("section", { "aria-label": "Start a run" },
        h("h2", {}, "Start a run"),
        h("form", { id: "start-form", onsubmit: submit }, form.element, error, start),
        h("details", { class: "schema" }, h("summary", {}, "Input schema"), h("pre", {}, schema ? pretty(schema) : "none (any JSON)")),
        h("p", {}, h("a", { href: `#/runs?workflow=${encodeURIComponent(key)}` }, "Runs of this workflow →")))),
  );
}
