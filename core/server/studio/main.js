// The Studio's entry: the token field, the notice line and a hash router over the views
// (#/workflows, #/workflows/KEY, #/runs?workflow=&status=&page=, #/runs/KEY/RUN_ID).
import { ApiError, token } from "./api.js";
import { runPage } from "./run.js";
import { runList } from "./runs.js";
import { workflowList, workflowPage } from "./workflows.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let leave = null; // what the current view stops when left (a stream, a timer)
let shown = 0; // which navigation is current: a view that finishes loading late stops at once

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  leave?.();
  leave = null;
  const mine = ++shown;
  notice.hidden = true;
  const [path, query = ""] = (location.hash.slice(1) || "/workflows").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", link.dataset.nav === parts[0]);
  }
  // Each view is built off-screen and shown once loaded, unless another navigation came first.
  const view = document.createElement("div");
  try {
    let stop = null;
    if (parts[0] === "runs" && parts.length === 3) stop = await runPage(view, parts[1], parts[2]);
    else if (parts[0] === "runs") stop = await runList(view, new URLSearchParams(query), go);
    else if (parts[0] === "workflows" && parts.length === 2) await workflowPage(view, parts[1], go);
    else await workflowList(view);
    if (mine !== shown) {
      stop?.();
      return;
    }
    leave = stop;
    main.replaceChildren(view);
    document.title = `${parts.join(" / ") || "workflows"} · stepstream Studio`;
    main.dataset.shown = location.hash; // which view is on screen (tests wait for it)
  } catch (error) {
    if (mine !== shown) return;
    notice.textContent =
      error instanceof ApiError && error.status === 401
        ? "The server needs a bearer token: type it above and press Use."
        : `Could not load this view: ${error.message}`;
    notice.hidden = false;
    main.replaceChildren();
  }
}

const field = document.getElementById("token");
field.value = token.get();
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token.set(field.value.trim());
  route();
});
window.addEventListener("hashchange", route);
route();
