// A virtualised list of a run's events: only the rows in view (plus a margin) are in the
// DOM, each of a fixed height, so a run of 100,000 events scrolls as lightly as one of ten.
import { h } from "./dom.js";

const ROW = 26; // px: fixed, so a row's place is its index times ROW and nothing jumps
const MARGIN = 10;

export class Timeline {
  constructor(onPick) {
    this.events = [];
    this.onPick = onPick;
    this.follow = true;
    this.spacer = h("div", { class: "spacer" });
    this.rows = h("div", { class: "rows" });
    this.element = h("div", { class: "timeline", tabindex: "0", role: "list", "aria-label": "Event timeline" }, this.spacer, this.rows);
    this.element.addEventListener("scroll", () => {
      const el = this.element;
      this.follow = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW * 2;
      this.schedule();
    });
    this.element.addEventListener("keydown", (e) => {
      const step = { ArrowDown: ROW, ArrowUp: -ROW, PageDown: this.element.clientHeight, PageUp: -this.element.clientHeight }[e.key];
      if (step) {
        this.element.scrollTop += step;
        e.preventDefault();
      } else if (e.key === "End") this.element.scrollTop = this.element.scrollHeight;
      else if (e.key === "Home") this.element.scrollTop = 0;
    });
    this.pending = false;
  }

  push(event) {
    this.events.push(event);
    this.element.dataset.count = String(this.events.length);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const el = this.element;
    this.spacer.style.height = `${this.events.length * ROW}px`;
    if (this.follow) el.scrollTop = el.scrollHeight;
    const first = Math.max(0, Math.floor(el.scrollTop / ROW) - MARGIN);
    const last = Math.min(this.events.length, Math.ceil((el.scrollTop + el.clientHeight) / ROW) + MARGIN);
    this.rows.style.transform = `translateY(${first * ROW}px)`;
    const out = [];
    for (let i = first; i < last; i++) {
      const { id, type, data } = this.events[i];
      const step = data.payload?.id ?? data.name ?? "";
      const detail = type === "tool-call-delta" ? JSON.stringify(data.argsTextDelta) : data.payload?.status ?? "";
      out.push(h("div", { class: `row ev-${type}`, role: "listitem", onclick: () => this.onPick?.(this.events[i]) },
        h("span", { class: "seq" }, `#${id}`), h("span", { class: "type" }, type),
        h("span", { class: "sid" }, step), h("span", { class: "detail" }, detail)));
    }
    this.rows.replaceChildren(...out);
  }
}
