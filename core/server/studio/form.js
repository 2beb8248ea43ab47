// A form generated from a JSON Schema (an object's fields: text, number, checkbox, choice;
// anything else as JSON), with a raw JSON editor beside it. ``value()`` throws a clear
// Error naming the field when what was typed is not valid.
import { h, pretty } from "./dom.js";

let counter = 0;

function resolve(schema, root) {
  const ref = schema?.$ref;
  if (!ref || !ref.startsWith("#/$defs/")) return schema || {};
  return root.$defs?.[ref.slice(8)] || {};
}

function field(name, schema, root, required) {
  const spec = resolve(schema, root);
  const id = `f${++counter}`;
  const label = h("label", { for: id }, spec.title || name, required ? h("span", { class: "req", title: "required" }, " *") : null);
  let input;
  let read;
  const type = Array.isArray(spec.type) ? spec.type.find((t) => t !== "null") : spec.type;
  if (Array.isArray(spec.enum)) {
    input = h("select", { id, name }, spec.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
    read = () => JSON.parse(input.value);
  } else if (type === "boolean") {
    input = h("input", { id, name, type: "checkbox", checked: spec.default === true });
    read = () => input.checked;
  } else if (type === "number" || type === "integer") {
    input = h("input", { id, name, type: "number", step: type === "integer" ? "1" : "any", value: spec.default ?? "" });
    read = () => {
      if (input.value === "") return undefined;
      const n = Number(input.value);
      if (!Number.isFinite(n) || (type === "integer" && !Number.isInteger(n))) throw new Error(`${name}: expected ${type === "integer" ? "an integer" : "a number"}`);
      return n;
    };
  } else if (type === "string") {
    input = h("input", { id, name, type: "text", value: spec.default ?? "", spellcheck: "false" });
    // An empty box is "not given" (a required field then says so), never the empty string.
    read = () => (input.value === "" ? undefined : input.value);
  } else {
    input = h("textarea", { id, name, rows: 3, class: "json", spellcheck: "false" }, spec.default === undefined ? "" : pretty(spec.default));
    read = () => {
      if (!input.value.trim()) return undefined;
      try {
        return JSON.parse(input.value);
      } catch (error) {
        throw new Error(`${name}: not JSON (${error.message})`);
      }
    };
  }
  return { row: h("div", { class: "field" }, label, input, spec.description ? h("small", {}, spec.description) : null), read, name, required };
}

/** A form for ``schema`` (or a JSON editor only when it has no fields); see the module note. */
export function schemaForm(schema, { initial } = {}) {
  const spec = resolve(schema, schema || {});
  const props = spec && spec.type === "object" ? spec.properties || {} : null;
  const required = new Set(spec?.required || []);
  const fields = props ? Object.entries(props).map(([name, s]) => field(name, s, schema, required.has(name))) : [];
  const raw = h("textarea", { class: "json raw", rows: 6, spellcheck: "false", "aria-label": "JSON value" },
    initial === undefined ? (props ? "{}" : "") : pretty(initial));
  const useRaw = h("input", { type: "checkbox", id: `raw${++counter}`, checked: !props || fields.length === 0 });
  const structured = h("div", { class: "fields" }, fields.map((f) => f.row));
  const sync = () => {
    structured.hidden = useRaw.checked;
    raw.hidden = !useRaw.checked;
  };
  useRaw.addEventListener("change", () => {
    if (useRaw.checked) {
      try {
        raw.value = pretty(fromFields());
      } catch {
        /* keep what the editor had */
      }
    }
    sync();
  });
  const fromFields = () => {
    const out = {};
    for (const f of fields) {
      const value = f.read();
      if (value === undefined) {
        if (f.required) throw new Error(`${f.name} is required`);
      } else out[f.name] = value;
    }
    return out;
  };
  sync();
  const element = h("div", { class: "schema-form" }, structured, raw,
    h("label", { class: "inline", for: useRaw.id }, useRaw, " Raw JSON"));
  return {
    element,
    value() {
      if (!useRaw.checked) return fromFields();
      if (!raw.value.trim()) return null;
      try {
        return JSON.parse(raw.value);
      } catch (error) {
        throw new Error(`the JSON is invalid: ${error.message}`);
      }
    },
  };
}
