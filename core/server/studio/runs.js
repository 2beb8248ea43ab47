// The runs view: every stored run with its status, start and duration, filtered by workflow
// and status, a page at a time, refreshed while it is shown.
import { api, workflowPath } from "./api.js";
import { duration, h, fill } from "./dom.js";

const PAGE = 20;
const STATUSES = ["running", "suspended", "success", "failed", "canceled", "interrupted", "pending"];
const REFRESH_MS = 2000;

async function allRuns(keys) {
  // The API lists runs per workflow (newest first, at most 1000 a call).
  const lists = await Promise.all(keys.map(async (key) => {
    const { runs } = await api(`${workflowPath(key)}/runs?limit=1000`);
    return runs;
  }));
  return lists.flat().sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}

export async function runList(main, params, go) {
  const keys = Object.keys(await api("api/workflows")).sort();
  const workflow = params.get("workflow") || "";
  const status = params.get("status") || "";
  const page = Math.max(0, Number(params.get("page") || 0) || 0);
  const navigate = (changes) => {
    const next = new URLSearchParams({ workflow, status, page: String(page), ...changes });
    for (const [k, v] of [...next]) if (!v || v === "0") next.delete(k);
    go(`#/runs?${next}`);
  };
  const pick = (name, value, options, label) =>
    h("label", {}, label, " ", h("select", { name, onchange: (e) => navigate({ [name]: e.target.value, page: "0" }) },
      h("option", { value: "" }, "all"),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const table = h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Started", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  fill(main, 
    h("h1", {}, "Runs"),
    h("div", { class: "filters" }, pick("workflow", workflow, keys, "Workflow"), pick("status", status, STATUSES, "Status")),
    table, pager);

  const refresh = async () => {
    const runs = (await allRuns(workflow ? [workflow] : keys)).filter((r) => !status || r.snapshot.status === status);
    const shown = runs.slice(page * PAGE, (page + 1) * PAGE);
    body.replaceChildren(...(shown.length ? shown.map((r) => {
      const started = Date.parse(r.createdAt);
      // A running run's duration grows on screen; any other stopped at its last change.
      const live = r.snapshot.status === "running";
      const took = live ? Date.now() - started : Date.parse(r.updatedAt) - started;
      return h("tr", { dataset: { run: r.runId, status: r.snapshot.status } },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.workflowName)}/${encodeURIComponent(r.runId)}` }, r.runId.slice(0, 8))),
        h("td", {}, r.workflowName),
        h("td", {}, h("span", { class: `status ${r.snapshot.status}` }, r.snapshot.status)),
        h("td", {}, new Date(started).toLocaleString()),
        h("td", {}, live ? `${duration(took)}…` : duration(took)));
    }) : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No runs."))]));
    const pages = Math.max(1, Math.ceil(runs.length / PAGE));
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => navigate({ page: String(page - 1) }) }, "← Newer"),
      h("span", {}, ` page ${page + 1} of ${pages} (${runs.length} runs) `),
      h("button", { disabled: page + 1 >= pages, onclick: () => navigate({ page: String(page + 1) }) }, "Older →"));
  };
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}
