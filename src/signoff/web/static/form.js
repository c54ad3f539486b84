// Form fields generated from a tool's JSON Schema, for editing a held call's arguments.
// Strings, numbers, integers, booleans, enums and arrays of those become fields; anything else
// (nested objects, unions) becomes a small JSON box for that one argument. Values are only ever
// set with .value / .checked / textContent: nothing from the schema or the call becomes HTML.
"use strict";

const SchemaForm = (() => {
  const SIMPLE = ["string", "number", "integer", "boolean"];

  function kindOf(spec) {
    if (!spec || typeof spec !== "object") return "json";
    if (Array.isArray(spec.enum) && spec.enum.every((v) => ["string", "number", "boolean"].includes(typeof v))) return "enum";
    const type = Array.isArray(spec.type) ? spec.type.filter((t) => t !== "null")[0] : spec.type;
    if (SIMPLE.includes(type)) return type;
    if (type === "array" && spec.items && (SIMPLE.includes(spec.items.type) || Array.isArray(spec.items.enum))) return "array";
    return "json";
  }

  function supported(schema) {
    return !!(schema && typeof schema === "object" && schema.properties && typeof schema.properties === "object"
      && Object.keys(schema.properties).length);
  }

  function label(name, spec, required) {
    const text = (spec && typeof spec.title === "string" && spec.title) || name;
    return text + (required ? " *" : "");
  }

  function el(tag, props = {}) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k in node) node[k] = v;
      else node.setAttribute(k, v);
    }
    return node;
  }

  function scalarInput(kind, spec, value) {
    if (kind === "enum") {
      const select = el("select");
      select.appendChild(el("option", { value: "", text: "(not set)" }));
      spec.enum.forEach((option, i) => select.appendChild(el("option", { value: String(i), text: String(option) })));
      const at = spec.enum.findIndex((o) => o === value);
      select.value = at >= 0 ? String(at) : "";
      return select;
    }
    if (kind === "boolean") {
      const box = el("input", { type: "checkbox" });
      box.checked = value === true;
      return box;
    }
    if (kind === "number" || kind === "integer") {
      const input = el("input", { type: "text", inputMode: kind === "integer" ? "numeric" : "decimal" });
      input.value = value === undefined || value === null ? "" : String(value);
      return input;
    }
    if (kind === "string") {
      const text = value === undefined || value === null ? "" : String(value);
      const long = text.length > 80 || text.includes("\n") || (spec && (spec.format === "textarea" || (spec.maxLength || 0) > 200));
      const input = long ? el("textarea", { rows: Math.min(12, Math.max(3, text.split("\n").length + 1)) }) : el("input", { type: "text" });
      input.value = text;
      return input;
    }
    const box = el("textarea", { rows: 3, spellcheck: false, className: "json" });
    box.value = value === undefined ? "" : JSON.stringify(value, null, 2);
    return box;
  }

  // Read one scalar field: [present, value, problem]
  function readScalar(kind, spec, input, name) {
    if (kind === "boolean") return [true, input.checked, ""];
    const raw = input.value;
    if (kind === "enum") return raw === "" ? [false] : [true, spec.enum[Number(raw)], ""];
    if (raw.trim() === "" && kind !== "string") return [false];
    if (kind === "string") {
      if (raw === "") return [false];
      if (spec && spec.minLength && raw.length < spec.minLength) return [true, raw, `“${name}” needs at least ${spec.minLength} characters.`];
      if (spec && spec.maxLength && raw.length > spec.maxLength) return [true, raw, `“${name}” may have at most ${spec.maxLength} characters.`];
      if (spec && spec.pattern) {
        try { if (!new RegExp(spec.pattern, "u").test(raw)) return [true, raw, `“${name}” does not have the expected form (${spec.pattern}).`]; }
        catch (e) { /* a pattern JavaScript cannot read: the server checks it */ }
      }
      return [true, raw, ""];
    }
    if (kind === "number" || kind === "integer") {
      const number = Number(raw.trim());
      if (!Number.isFinite(number)) return [true, raw, `“${name}” must be a number, not “${raw.trim()}”.`];
      if (kind === "integer" && !Number.isInteger(number)) return [true, number, `“${name}” must be a whole number, not ${raw.trim()}.`];
      if (spec && typeof spec.minimum === "number" && number < spec.minimum) return [true, number, `“${name}” must be at least ${spec.minimum}.`];
      if (spec && typeof spec.maximum === "number" && number > spec.maximum) return [true, number, `“${name}” must be at most ${spec.maximum}.`];
      return [true, number, ""];
    }
    try { return [true, JSON.parse(raw), ""]; }
    catch (e) { return [true, raw, `“${name}” is not valid JSON (${e.message}).`]; }
  }

  function arrayField(spec, value, name) {
    const itemSpec = spec.items || {};
    const itemKind = kindOf(itemSpec);
    const box = el("div", { className: "array" });
    const list = el("ol");
    const add = el("button", { type: "button", text: "Add an item", className: "add-item" });
    function addRow(v) {
      const li = el("li");
      const input = scalarInput(itemKind, itemSpec, v);
      input.setAttribute("aria-label", `${name} item`);
      const remove = el("button", { type: "button", text: "Remove", className: "remove-item" });
      remove.addEventListener("click", () => li.remove());
      li.append(input, remove);
      list.appendChild(li);
    }
    (Array.isArray(value) ? value : []).forEach(addRow);
    add.addEventListener("click", () => addRow(undefined));
    box.append(list, add);
    return {
      node: box,
      read() {
        const out = [];
        for (const li of list.children) {
          const [present, v, problem] = readScalar(itemKind, itemSpec, li.firstElementChild, `${name} item ${out.length + 1}`);
          if (problem) return [true, out, problem];
          if (present) out.push(v);
        }
        return [true, out, ""];
      },
    };
  }

  function build(container, schema, values) {
    container.replaceChildren();
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const fields = [];
    const known = new Set();
    // stored schemas have sorted keys: the required arguments first, in the tool's `required` order
    const names = Object.keys(schema.properties);
    const order = [...(schema.required || []).filter((n) => names.includes(n)), ...names.filter((n) => !required.has(n))];
    container.oninput = container.onchange = (event) => {  // an edited field's old complaint goes away
      const field = event.target.closest(".field");
      if (field) field.querySelector(".field-error").textContent = "";
    };
    for (const name of order) {
      const spec = schema.properties[name];
      known.add(name);
      const kind = kindOf(spec);
      const wrap = el("div", { className: "field" });
      wrap.dataset.name = name;
      const id = `f-${Math.random().toString(36).slice(2)}`;
      const title = el("label", { text: label(name, spec, required.has(name)), htmlFor: id });
      let reader;
      let input;
      if (kind === "array") {
        const array = arrayField(spec, values[name], name);
        input = array.node;
        reader = () => array.read();
      } else {
        input = scalarInput(kind, spec, values[name]);
        reader = () => readScalar(kind, spec, input, name);
      }
      input.id = id;
      wrap.append(title, input);
      if (spec && typeof spec.description === "string" && spec.description) wrap.appendChild(el("small", { text: spec.description }));
      const error = el("span", { className: "field-error" });
      wrap.appendChild(error);
      container.appendChild(wrap);
      fields.push({ name, reader, error, required: required.has(name) });
    }
    const extra = Object.keys(values || {}).filter((k) => !known.has(k));
    if (extra.length) container.appendChild(el("p", { className: "meta", text: `Not in the tool's schema (kept as they are): ${extra.join(", ")}` }));
    return {
      read() {
        const out = {};
        for (const k of extra) out[k] = values[k];
        const errors = [];
        for (const f of fields) {
          const [present, value, problem] = f.reader();
          f.error.textContent = "";
          if (problem) { errors.push(problem); f.error.textContent = problem; continue; }
          if (!present) {
            if (f.required) { const text = `“${f.name}” is required by the tool.`; errors.push(text); f.error.textContent = text; }
            continue;
          }
          out[f.name] = value;
        }
        return { value: out, errors };
      },
    };
  }

  return { supported, build };
})();
