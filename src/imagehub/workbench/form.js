// A form generated from a model's request_schema: `basic` fields first, the rest under
// "Advanced", each group ordered by x-order. The same schema checks values before sending.

import { h } from "./dom.js";

const IMAGE_FIELDS = /(^|_)images?$/;
// The pattern the server gives text that must not be blank (catalog/schema.py's NON_BLANK).
const NON_BLANK = "[^\\s\\u200b-\\u200d\\u2060\\ufeff]";
const SAFE_MAX_HINT = "At most 2^53 − 1 here: the largest whole number a browser sends exactly.";

function typesOf(spec) {
  return [].concat(spec.type || "string");
}

function isImageField(name, spec) {
  return IMAGE_FIELDS.test(name) && typesOf(spec).some((t) => t === "string" || t === "array");
}

function withArticle(word) {
  return `${/^[aeiou]/.test(word) ? "an" : "a"} ${word}`;
}

/** The spec as the form enforces it: an integer maximum past what JavaScript holds exactly
 * (a seed's 2^63 − 1) is lowered to Number.MAX_SAFE_INTEGER, so what is sent is what was typed. */
function browserSpec(spec) {
  if (!typesOf(spec).includes("integer") || !(spec.maximum > Number.MAX_SAFE_INTEGER)) return spec;
  const description = [spec.description, SAFE_MAX_HINT].filter(Boolean).join(" ");
  return { ...spec, maximum: Number.MAX_SAFE_INTEGER, description };
}

function byOrder([nameA, a], [nameB, b]) {
  const order = (a["x-order"] ?? 99) - (b["x-order"] ?? 99);
  return order || nameA.localeCompare(nameB);
}

/** Check one value against its property, the way the server does; an error message or null. */
export function checkValue(name, spec, value, required) {
  if (value === undefined) return required ? "required" : null;
  const types = typesOf(spec);
  if (typeof value === "string" && !types.includes("string") && !types.includes("array")) {
    return `not ${types.map(withArticle).join(" or ")}`;
  }
  if (Array.isArray(value) && !types.includes("array")) return "one value only";
  if (Array.isArray(value) && spec.maxItems !== undefined && value.length > spec.maxItems) {
    return `at most ${spec.maxItems} values`;
  }
  if (types.includes("integer") && typeof value === "number" && !Number.isInteger(value)) {
    return "must be a whole number";
  }
  if (typeof value === "number") {
    if (spec.minimum !== undefined && value < spec.minimum) return `must be ≥ ${spec.minimum}`;
    if (spec.maximum !== undefined && value > spec.maximum) return `must be ≤ ${spec.maximum}`;
  }
  if (typeof value === "string") {
    if (spec.minLength && value.length < spec.minLength) return "must not be empty";
    const chars = [...value].length;  // code points, as JSON Schema counts them
    if (spec.maxLength !== undefined && chars > spec.maxLength) {
      return `at most ${spec.maxLength} characters (this is ${chars})`;
    }
    if (spec.pattern && !new RegExp(spec.pattern, "u").test(value)) {
      if (spec.pattern === NON_BLANK) return "must not be empty";
      return `does not match the pattern ${spec.pattern}`;
    }
  }
  if (spec.enum && !spec.enum.includes(value)) return `must be one of ${spec.enum.join(", ")}`;
  return null;
}

/** One field: its control, how to read and write it. */
class Field {
  constructor(name, spec, required) {
    this.name = name;
    this.spec = browserSpec(spec);
    this.required = required;
    // the form's own error line is the one alert; a field's error and hint describe its control
    this.error = h("div", { class: "field-error", id: `field-${name}-error` });
    this.control = this._control();
    const { description } = this.spec;
    const hint = description ? h("small", { class: "hint", id: `field-${name}-hint` }, description) : null;
    (this.urlInput || this.control).setAttribute("aria-describedby",
      [hint ? `field-${name}-hint` : "", `field-${name}-error`].filter(Boolean).join(" "));
    this.element = h("div", { class: "field", "data-field": name },
      h("label", { for: `field-${name}` }, name, required ? h("span", { class: "req" }, " *") : null),
      this.control, hint, this.error);
    if (spec.default !== undefined) this.set(spec.default);
  }

  _control() {
    const { name, spec } = this;
    const id = `field-${name}`;
    const types = typesOf(spec);
    if (spec.enum) {
      return h("select", { id, name },
        ...(this.required || spec.default !== undefined ? [] : [h("option", { value: "" }, "—")]),
        ...spec.enum.map((v, i) => h("option", { value: String(i) }, String(v))));
    }
    if (types.includes("boolean") && spec.default !== undefined) {
      return h("input", { id, name, type: "checkbox", role: "switch", class: "toggle" });
    }
    if (types.includes("boolean")) {  // no default: "not sent" must stay possible
      return h("select", { id, name }, h("option", { value: "" }, "—"),
        h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    }
    if (types.includes("integer") || types.includes("number")) {
      const attrs = { id, name, type: "number", step: types.includes("integer") ? "1" : "any" };
      if (spec.minimum !== undefined) attrs.min = String(spec.minimum);
      if (spec.maximum !== undefined) attrs.max = String(spec.maximum);
      return h("input", attrs);
    }
    if (isImageField(name, spec)) return this._imageControl(id);
    if (name === "prompt" || name.endsWith("_prompt")) return h("textarea", { id, name, rows: 3 });
    return h("input", { id, name, type: "text" });
  }

  _imageControl(id) {
    this.multiple = typesOf(this.spec).includes("array");
    this.uploads = [];
    this.urlInput = h("input", { id, name: this.name, type: "url",
      placeholder: this.multiple ? "https://… (one or more, space-separated)" : "https://…" });
    this.fileInput = h("input", { type: "file", accept: "image/*", "aria-label": `${this.name} upload` });
    if (this.multiple) this.fileInput.multiple = true;
    this.preview = h("div", { class: "uploads" });
    this.fileInput.addEventListener("change", async () => {
      const uploads = await Promise.all([...this.fileInput.files].map(readAsDataUri));
      if (!this.multiple && uploads.length) this.urlInput.value = "";  // one image: the file
      this._setUploads(uploads);
      this.element.dispatchEvent(new Event("input", { bubbles: true }));
    });
    this.urlInput.addEventListener("input", () => {
      if (!this.multiple && this.urlInput.value.trim()) this._setUploads([]);  // one image: the URL
    });
    return h("div", { class: "image-input" }, this.urlInput, h("span", {}, " or "), this.fileInput, this.preview);
  }

  _setUploads(uploads) {
    this.uploads = uploads;
    if (!uploads.length) this.fileInput.value = "";
    this.preview.replaceChildren(...this.uploads.map((src) => h("img", { src, alt: "upload" })));
  }

  /** The value as the request carries it; undefined when empty; the raw text when unparsable. */
  get() {
    const { spec } = this;
    const types = typesOf(spec);
    if (this.urlInput) {
      const text = this.urlInput.value.trim();
      if (!this.multiple) return text || this.uploads[0];  // sent as typed: the server names a bad one
      const all = [...text.split(/\s+/).filter(Boolean), ...this.uploads];
      return all.length ? all : undefined;
    }
    if (spec.enum) return this.control.value === "" ? undefined : spec.enum[Number(this.control.value)];
    if (types.includes("boolean")) {
      if (this.control.type === "checkbox") return this.control.checked;
      return this.control.value === "" ? undefined : this.control.value === "true";
    }
    const raw = this.control.value;
    if (types.includes("integer") || types.includes("number")) {
      if (raw.trim() === "") return this.control.validity.badInput ? "" : undefined;
      const n = Number(raw);
      return Number.isFinite(n) ? n : raw;
    }
    if (raw === "" && !this.required) return undefined;
    return raw;
  }

  set(value) {
    const types = typesOf(this.spec);
    if (this.urlInput) {
      const values = [].concat(value ?? []);
      this.urlInput.value = values.filter((v) => !String(v).startsWith("data:")).join(" ");
      this._setUploads(values.filter((v) => String(v).startsWith("data:")));
    } else if (this.spec.enum) {
      const index = this.spec.enum.indexOf(value);
      this.control.value = index < 0 ? "" : String(index);
    } else if (types.includes("boolean") && this.control.type === "checkbox") {
      this.control.checked = Boolean(value);
    } else if (types.includes("boolean")) {
      this.control.value = value === undefined || value === null ? "" : String(Boolean(value));
    } else {
      this.control.value = value === undefined || value === null ? "" : String(value);
    }
  }

  check() {
    const message = checkValue(this.name, this.spec, this.get(), this.required);
    this.error.textContent = message ? `${this.name}: ${message}` : "";
    this.element.classList.toggle("invalid", Boolean(message));
    (this.urlInput || this.control).setAttribute("aria-invalid", message ? "true" : "false");
    return message;
  }
}

function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** The whole form of one model. */
export class SchemaForm {
  constructor(schema) {
    const required = new Set(schema.required || []);
    const basic = new Set(schema.basic || ["prompt"]);
    const entries = Object.entries(schema.properties || {}).sort(byOrder);
    this.fields = entries.map(([name, spec]) => new Field(name, spec, required.has(name)));
    const basicFields = this.fields.filter((f) => basic.has(f.name));
    const advanced = this.fields.filter((f) => !basic.has(f.name));
    this.element = h("div", { class: "schema-form" },
      h("div", { class: "basic" }, ...basicFields.map((f) => f.element)),
      advanced.length
        ? h("details", { class: "advanced" }, h("summary", {}, `Advanced (${advanced.length})`),
          ...advanced.map((f) => f.element))
        : null);
    this.element.addEventListener("input", (event) => {
      const field = this.fields.find((f) => f.element.contains(event.target));
      if (field) field.check();
    });
    this.element.addEventListener("change", (event) => {
      const field = this.fields.find((f) => f.element.contains(event.target));
      if (field) field.check();
    });
  }

  /** The model's own fields as a request body carries them (empty ones left out). */
  values() {
    const out = {};
    for (const field of this.fields) {
      const value = field.get();
      if (value !== undefined) out[field.name] = value;
    }
    return out;
  }

  /** Flag every invalid field; the first problem, or null. Opens "Advanced" to show its own. */
  validate() {
    const problems = this.fields.map((f) => [f, f.check()]).filter(([, m]) => m);
    if (!problems.length) return null;
    const [field, message] = problems[0];
    const details = field.element.closest("details");
    if (details) details.open = true;
    (field.urlInput || field.control).focus();
    return `${field.name}: ${message}`;
  }

  /** The first problem of the form as it stands, flagging nothing (the API tab's warning). */
  problem() {
    for (const field of this.fields) {
      const message = checkValue(field.name, field.spec, field.get(), field.required);
      if (message) return `${field.name}: ${message}`;
    }
    return null;
  }

  /** A server's refusal ("<field>: why") shown at the field it names, which gets the focus;
   * false when it names none of this form's fields. */
  flag(detail) {
    const names = (f) => [`${f.name}:`, `${f.name}[`, `${f.name}.`];  // a list's item: "input_image.1: ..."
    const field = this.fields.find((f) => names(f).some((start) => detail.startsWith(start)));
    if (!field) return false;
    field.error.textContent = detail;
    field.element.classList.add("invalid");
    const control = field.urlInput || field.control;
    control.setAttribute("aria-invalid", "true");
    const details = field.element.closest("details");
    if (details) details.open = true;
    control.focus();
    return true;
  }

  /** Fill from a generation's params (unknown keys ignored). */
  setValues(values) {
    for (const field of this.fields) {
      if (field.name in values) field.set(values[field.name]);
    }
    this.fields.forEach((f) => f.check());
  }
}
