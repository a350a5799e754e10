// The Workbench: pick a model, fill its form, run it (sync or through the queue), watch the
// jobs, compare results, browse the history, copy the same request as code.

import { ApiError, EventStream, NetworkError, apiKey, call } from "./api.js";
import { copyText, h } from "./dom.js";
import { SchemaForm } from "./form.js";
import * as snippets from "./snippets.js";

const $ = (selector) => document.querySelector(selector);
// A row's keys that are not the model's params: its own fields, and the request-level ones it
// echoes (a re-run makes one generation, with the form's own choice of sync or queue).
const ROW_META = new Set(["generation_id", "model_name", "media_type", "status", "result_url",
  "error_message", "enqueued_at", "started_at", "completed_at", "progress", "images",
  "num_generations", "n", "response_format"]);
const ENDED = new Set(["succeeded", "failed", "cancelled"]);
const ECHOED_UPLOAD = /^data:[^,]*,\.\.\.\(\d+ chars\)$/;  // how rows echo a data URI they carried
const NO_KEY = "Enter an API key above (imagehub keys create) and press Use key.";
const SNIPPETS = {
  "curl-sync": (base, body) => snippets.curlSync(base, body.sync),
  "curl-async": (base, body) => snippets.curlAsyncPoll(base, body.queue),
  "curl-sse": (base, body) => snippets.curlAsyncSse(base, body.queue),
  python: (base, body, mode) => snippets.python(base, body[mode], mode),
  javascript: (base, body, mode) => snippets.javascript(base, body[mode], mode),
};

const state = {
  models: [],
  model: null,
  form: null,
  results: [],          // {key, generationId, index, url, width, height, model, params, mode}
  selected: new Set(),  // result keys
  jobs: new Map(),      // generation id -> Job
  uploads: new Map(),   // generation id -> {field: value} of the data URIs this tab sent
  early: new Map(),     // generation id -> events seen before its job was shown
  historyPage: 1,
  missingUploads: [],   // fields of a reopened row whose upload this tab does not have
  stream: null,
  streamLive: false,
  epoch: 0,             // one more each time the key's page goes: late answers of before are dropped
};
const OPEN_JOBS_SHOWN = 20;  // the newest open generations a page follows when it loads

// ---- helpers --------------------------------------------------------------------------------

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function count() {
  return Number($("#count").value);
}

/** A call to the server; a 401 on any of them means the key no longer holds (revoked, say):
 * the header says so and the models go, as when the key is first refused. */
async function api(method, path, body) {
  const epoch = state.epoch;
  try {
    return await call(method, path, body);
  } catch (error) {
    // a 401 to a call made with a key the page has since dropped says nothing of the key now
    if (error instanceof ApiError && error.status === 401 && epoch === state.epoch) refuseKey(error);
    throw error;
  }
}

function showError(message) {
  $("#form-error").textContent = message || "";
}

function describe(error) {
  if (error instanceof ApiError && error.status === 401) {
    return `${error.detail} — enter an API key above (imagehub keys create).`;
  }
  if (error instanceof ApiError) return `${error.status} ${error.type}: ${error.detail}`;
  if (error instanceof NetworkError) {
    return "the server did not answer (is it running? is the network up?); try again";
  }
  return String(error);
}

/** The request bodies the form stands for, for both endpoints. */
function bodies() {
  const fields = state.form ? state.form.values() : {};
  const base = { model: state.model ? state.model.id : "", ...fields };
  const n = count();
  return {
    sync: n > 1 ? { ...base, n } : base,
    queue: n > 1 ? { ...base, num_generations: n } : base,
  };
}

// ---- models and the form --------------------------------------------------------------------

async function loadModels() {
  try {
    state.models = (await api("GET", "/api/ai/models")).data;
  } catch (error) {
    $("#model-info").textContent = apiKey.get() ? describe(error) : NO_KEY;
    return;
  }
  $("#key-state").textContent = apiKey.get() ? "key set for this tab" : "no key needed here";
  const select = $("#model");
  const current = select.value || (state.model && state.model.id);
  select.replaceChildren(h("option", { value: "" }, "— pick a model —"),
    ...state.models.map((m) => h("option", { value: m.id, title: m.unavailable_reason || m.description },
      `${m.display_name} (${m.id})${m.available ? "" : " — unavailable here"}`)));
  if (current && state.models.some((m) => m.id === current)) {
    select.value = current;
    pickModel(current);
  }
  followOpenJobs();
}

/** The namespace's queued and processing generations (queued before a reload, from another
 * tab, by a script), the newest OPEN_JOBS_SHOWN, shown as jobs of this page: followed,
 * cancellable, their results added when they end. */
async function followOpenJobs() {
  const epoch = state.epoch;
  let open;
  try {
    open = (await api("GET", `/api/ai/queue?limit=${OPEN_JOBS_SHOWN}`)).generations;  // newest first
  } catch {
    return;  // a refused key says so in the header
  }
  if (epoch !== state.epoch) return;  // the key changed meanwhile
  const fresh = open.filter((row) => !state.jobs.has(row.generation_id));
  if (!fresh.length) return;
  ensureStream();
  // top down as runs show them: the newest request first, a request's generations in their order
  // (rows enqueued in the same second are taken as one request)
  const order = (row) => fresh.indexOf(row);
  const shown = [...fresh].sort((a, b) => b.enqueued_at - a.enqueued_at || order(b) - order(a));
  for (const row of shown.reverse()) {  // each goes on top: the last ends lowest
    const job = addJob(row.generation_id, row.model_name, row.prompt);
    if (row.status === "processing") job.setStatus("processing");
    if (row.progress) job.progress.value = row.progress;
  }
}

/** The key was refused: say so, and let no model of an earlier key stay usable. */
function refuseKey(error) {
  $("#key-state").textContent = apiKey.get() ? `key refused: ${error.detail}`
    : "this server needs a key";
  apiKey.set("");  // a reload does not try it again
  stopStream();
  clearModels();
  dropKeyState();
}

/** What the page holds under a key goes with it (a new key, Forget, a refusal): its jobs stop
 * being followed and its results, selection and history leave the page. */
function dropKeyState() {
  state.epoch += 1;
  state.historyPage = 1;
  for (const job of state.jobs.values()) job.drop();
  state.jobs.clear();
  state.results = [];
  state.selected.clear();
  state.uploads.clear();
  state.early.clear();
  $("#jobs").replaceChildren();
  $("#jobs-clear").hidden = true;
  $("#gallery").replaceChildren();
  $("#history tbody").replaceChildren();
  $("#history-page").textContent = "";
  showSelection();
  if (!$("#tab-compare").hidden) renderCompare();
  if (!$("#tab-history").hidden && apiKey.get()) loadHistory();
}

/** No model usable until a key is entered (refused, forgotten). */
function clearModels() {
  state.models = [];
  $("#model").replaceChildren(h("option", { value: "" }, "— enter a key first —"));
  pickModel("");
}

function pickModel(id, values) {
  state.missingUploads = [];
  const model = state.models.find((m) => m.id === id) || null;
  state.model = model;
  $("#model").value = model ? model.id : "";
  if (!model) {
    state.form = null;
    $("#fields").replaceChildren();
    $("#model-info").textContent = "";
    renderSnippets();
    return;
  }
  $("#model-info").textContent = [model.description, `backend ${model.backend}`,
    model.available ? "" : `unavailable: ${model.unavailable_reason}`].filter(Boolean).join(" · ");
  state.form = new SchemaForm(model.request_schema);
  if (values) state.form.setValues(values);
  $("#fields").replaceChildren(state.form.element);
  renderSnippets();
}

// ---- running --------------------------------------------------------------------------------

async function run(event) {
  if (event) event.preventDefault();
  showError("");
  if (!state.model) return showError("Pick a model first.");
  const problem = state.form.validate();
  if (problem) return showError(`Fix the form first: ${problem}`);
  const values = state.form.values();
  const unchosen = state.missingUploads.filter((name) => values[name] === undefined);
  state.missingUploads = [];  // said once: Run again runs without them
  if (unchosen.length) {
    return showError(`${unchosen.join(", ")}: the run you reopened had an uploaded file, not ` +
      "kept by the server; choose it again, or press Run again to run without it.");
  }
  const button = $("#run");
  button.disabled = true;
  try {
    if (mode() === "sync") await runSync(bodies().sync);
    else await runQueued(bodies().queue);
  } catch (error) {
    showError(describe(error));
    if (error instanceof ApiError && error.status === 400 && state.form) state.form.flag(error.detail);
  } finally {
    button.disabled = false;
  }
}

async function runSync(body) {
  $("#run").textContent = "Running…";
  const epoch = state.epoch;
  try {
    const result = await api("POST", "/api/ai/images/generate", body);
    if (epoch !== state.epoch) return;  // made under a key the page has dropped since
    let seed = body.seed;
    if (result.generation_id) {
      rememberUploads(result.generation_id, body);
      const row = await api("GET", `/api/ai/queue/${result.generation_id}`);
      seed = row.seed ?? seed;
    }
    addResults(result.images.map((image, index) => ({
      generationId: result.generation_id || `sync-${Date.now()}`, index, url: image.url,
      width: image.width, height: image.height, model: result.model,
      params: modelParams(body, seedOf(seed, index)), mode: "sync",
    })));
  } finally {
    $("#run").textContent = "Run";
  }
}

async function runQueued(body) {
  ensureStream();  // not awaited: jobs are polled while the stream is down
  const epoch = state.epoch;
  const result = await api("POST", "/api/ai/queue", body);
  if (epoch !== state.epoch) return;
  for (const generation of [...result.generations].reverse()) {  // the first ends on top
    rememberUploads(generation.generation_id, body);
    addJob(generation.generation_id, body.model, body.prompt);
  }
}

/** A job card on top of the others, with the events that came before it. */
function addJob(id, model, prompt) {
  const job = new Job(id, model, prompt);
  state.jobs.set(job.id, job);
  $("#jobs").prepend(job.element);
  for (const [name, data] of state.early.get(job.id) || []) job.on(name, data);
  state.early.delete(job.id);
  $("#jobs-clear").hidden = false;
  return job;
}

/** Finished job cards leave (their results stay in the gallery). */
function clearFinishedJobs() {
  for (const [id, job] of state.jobs) {
    if (!ENDED.has(job.status)) continue;
    job.element.remove();
    state.jobs.delete(id);
  }
  $("#jobs-clear").hidden = state.jobs.size === 0;
}

/** The seed of image `index` of a sync run: the server gives image i the seed + i. */
function seedOf(seed, index) {
  return Number.isSafeInteger(seed + index) ? seed + index : undefined;
}

function modelParams(body, seed) {
  const params = { ...body };
  delete params.model;
  delete params.n;
  delete params.num_generations;
  delete params.response_format;
  delete params.seed;
  if (seed !== undefined && seed !== null) params.seed = seed;
  return params;
}

// ---- uploaded input images ------------------------------------------------------------------
// Rows echo an uploaded image shortened ("data:image/png;base64,...(226 chars)"), which the
// server refuses as input. The tab keeps what it sent, by generation id, to put it back.

const isEchoedUpload = (value) => typeof value === "string" && ECHOED_UPLOAD.test(value);

function rememberUploads(generationId, body) {
  const isUpload = (value) => typeof value === "string" && value.startsWith("data:");
  const sent = Object.entries(body).filter(([, value]) => [].concat(value).some(isUpload));
  if (sent.length) state.uploads.set(generationId, Object.fromEntries(sent));
}

/** A row's params with its uploads put back; those this tab did not send are left out and
 * named in `missing` (the user chooses the file again). */
function withUploads(generationId, params) {
  const sent = state.uploads.get(generationId) || {};
  const out = { ...params };
  const missing = [];
  for (const [name, value] of Object.entries(params)) {
    if (![].concat(value).some(isEchoedUpload)) continue;
    if (name in sent) {
      out[name] = sent[name];
      continue;
    }
    missing.push(name);
    const kept = [].concat(value).filter((v) => !isEchoedUpload(v));
    if (Array.isArray(value) && kept.length) out[name] = kept;
    else delete out[name];
  }
  return { params: out, missing };
}

/** Params as the page shows them: an uploaded image (in full or as echoed) by name only, a long
 * text cut short. */
function shown(value, indent) {
  return JSON.stringify(value, (key, v) => (typeof v !== "string" ? v
    : v.startsWith("data:") ? "uploaded image" : clipped(v, 1000)), indent);
}

/** Text cut to ``limit`` characters for display, saying how long it was (a prompt may be long). */
function clipped(text, limit = 300) {
  const chars = [...(text || "")];
  if (chars.length <= limit) return text || "";
  return `${chars.slice(0, limit).join("")}… (${chars.length} characters)`;
}

/** One queued generation: status, step progress, cancel. */
class Job {
  constructor(id, model, prompt) {
    this.id = id;
    this.model = model;
    this.status = "queued";
    const name = `${model} job ${id.slice(0, 8)}`;
    this.progress = h("progress", { max: "1", value: "0", "aria-label": `progress of ${name}` });
    this.label = h("span", { class: "job-status" }, "queued");
    this.cancelButton = h("button", { type: "button", class: "cancel", onclick: () => this.cancel(),
      "aria-label": `Cancel ${name}` }, "Cancel");
    this.element = h("div", { class: "job", "data-generation": id, "data-status": "queued" },
      h("div", { class: "job-head" }, h("code", {}, id.slice(0, 8)), " ", h("strong", {}, model),
        " · ", h("span", { class: "job-prompt" }, clipped(prompt, 120))),
      this.progress, this.label, this.cancelButton);
    this.ticks = 0;
    this.poll = setInterval(() => this.refresh(), 1000);  // each second while the stream is down
  }

  setStatus(status, text) {
    this.status = status;
    this.element.dataset.status = status;
    this.label.textContent = text || status;
    if (ENDED.has(status)) {
      this.stopFollowing();
      this.cancelButton.remove();
    }
  }

  stopFollowing() {
    clearInterval(this.poll);
  }

  /** Off the page with its key: whatever still arrives for it changes nothing. */
  drop() {
    this.dropped = true;
    this.stopFollowing();
  }

  on(name, data) {
    if (this.dropped || ENDED.has(this.status)) return;
    if (name === "media_generation_started") this.setStatus("processing", "processing");
    else if (name === "media_generation_progress") {
      this.progress.value = data.step / Math.max(data.total_steps, 1);
      this.setStatus("processing", `step ${data.step}/${data.total_steps}`);
    } else if (name === "media_generation_cancelled") this.setStatus("cancelled");
    else if (name === "media_generation_completed") {
      if (data.status === "succeeded") this.finish();
      else this.setStatus("failed", `failed: ${data.error || "unknown error"}`);
    }
  }

  async finish() {
    const row = await api("GET", `/api/ai/queue/${this.id}`);
    this.ended(row);
  }

  ended(row) {
    if (this.dropped || ENDED.has(this.status)) return;
    this.progress.value = row.status === "succeeded" ? 1 : this.progress.value;
    this.setStatus(row.status, row.status === "failed" ? `failed: ${row.error_message}` : row.status);
    if (row.status !== "succeeded") return;
    const images = row.images || [{ url: row.result_url }];
    this.element.append(h("img", { src: images[0].url, alt: "", class: "thumb" }));
    addResults(rowResults(row, "queue"));
  }

  async refresh() {
    if (state.streamLive && ++this.ticks % 3) return;  // live: every 3 s, in case it misses one
    try {
      const row = await api("GET", `/api/ai/queue/${this.id}`);
      if (ENDED.has(row.status)) this.ended(row);
      else if (row.status === "processing" && this.status === "queued") this.setStatus("processing");
      if (row.progress !== undefined) this.progress.value = row.progress;
    } catch {
      // the next tick tries again
    }
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      await api("DELETE", `/api/ai/queue/${this.id}`);
      this.setStatus("cancelled");
    } catch (error) {
      this.label.textContent = describe(error);
      this.cancelButton.disabled = false;
    }
  }
}

function rowParams(row) {
  const params = {};
  for (const [key, value] of Object.entries(row)) {
    if (!ROW_META.has(key) && value !== null) params[key] = value;
  }
  return params;
}

function ensureStream() {
  if (!state.stream) {
    const stream = new EventStream(onEvent, (status, error) => {
      if (state.stream !== stream) return;  // one stopped for a new key
      state.streamLive = status === "live";
      const why = error ? ` (${describe(error)})` : "";
      $("#events-state").textContent = state.streamLive ? "events: live"
        : `events: ${status}${why}; jobs are followed by polling`;
      if (status === "error" || status === "closed") state.stream = null;
      // the server ends a revoked key's stream; reconnecting is then refused
      if (error instanceof ApiError && error.status === 401) refuseKey(error);
    });
    state.stream = stream;
  }
  return state.stream.start();
}

function stopStream() {
  if (state.stream) state.stream.stop();
  state.stream = null;
  state.streamLive = false;
  $("#events-state").textContent = "";
}

function onEvent(name, data) {
  const job = state.jobs.get(data.generation_id);
  if (job) return job.on(name, data);
  const seen = state.early.get(data.generation_id) || [];
  seen.push([name, data]);
  state.early.set(data.generation_id, seen.slice(-50));
  if (state.early.size > 200) state.early.delete(state.early.keys().next().value);
}

// ---- results, compare -----------------------------------------------------------------------

/** A run's results on top of the gallery, in their own order (image 0 first). */
function addResults(results) {
  for (const result of [...results].reverse()) addResult(result);
}

/** A succeeded row's images as results (a queued job's, or one picked from the history); a
 * result without a mode re-runs as the form stands. */
function rowResults(row, runMode) {
  const images = row.images || [{ url: row.result_url }];
  const { params, missing } = withUploads(row.generation_id, rowParams(row));
  return images.map((image, index) => ({
    generationId: row.generation_id, index, url: image.url, width: image.width,
    height: image.height, model: row.model_name, mode: runMode, missing,
    // a sync row of n images: image i had the seed + i
    params: index && params.seed !== undefined ? modelParams(params, seedOf(params.seed, index)) : params,
  }));
}

function addResult(result) {
  result.key = `${result.generationId}/${result.index}`;
  if (state.results.some((r) => r.key === result.key)) return;
  state.results.unshift(result);
  const name = `${result.model}, seed ${result.params.seed ?? "unknown"}, image ${result.index + 1} ` +
    `of ${result.generationId.slice(0, 8)}`;
  const checkbox = h("input", { type: "checkbox", class: "select",
    "aria-label": `select ${name} for compare` });
  checkbox.addEventListener("change", () => toggleSelected(result.key, checkbox.checked));
  const size = result.width ? `${result.width}×${result.height}` : "";
  const figure = h("figure", { class: "result", "data-key": result.key,
    "data-generation": result.generationId, "data-index": result.index,
    "data-seed": result.params.seed ?? "" },
    h("a", { href: result.url, target: "_blank", rel: "noopener noreferrer" },
      h("img", { src: result.url, alt: clipped(result.params.prompt) || "generated image",
        loading: "lazy" })),
    h("figcaption", {},
      h("label", { class: "pick" }, checkbox, " select"),
      h("div", {}, h("strong", {}, result.model), ` · seed ${result.params.seed ?? "?"} · ${size}`),
      h("div", { class: "prompt" }, clipped(result.params.prompt)),
      h("details", {}, h("summary", {}, "Parameters"),
        h("pre", { class: "params" }, shown(result.params, 2))),
      h("button", { type: "button", class: "rerun", onclick: () => rerun(result),
        disabled: result.params.seed === undefined, title: result.params.seed === undefined
          ? "the seed of this image is not known exactly" : null }, "Re-run (same seed)")));
  $("#gallery").prepend(figure);
}

function toggleSelected(key, on) {
  if (on) state.selected.add(key);
  else state.selected.delete(key);
  showSelection();
  if (!$("#tab-compare").hidden) renderCompare();
}

function showSelection() {
  const n = state.selected.size;
  $("#compare-selected").disabled = n < 2 || n > 4;
  $("#selection").textContent = n ? `${n} selected${n > 4 ? " (at most 4)" : ""}` :
    "Select 2–4 results to compare them side by side.";
}

function renderCompare() {
  const chosen = state.results.filter((r) => state.selected.has(r.key)).slice(0, 4);
  if (chosen.length < 2) {
    $("#compare").className = "compare";
    $("#compare").replaceChildren(h("p", { class: "muted" },
      "Select 2–4 results on the Results tab to compare them side by side."));
    return;
  }
  const keys = [...new Set(chosen.flatMap((r) => Object.keys(r.params)))].sort();
  const differs = (key) => new Set(chosen.map((r) => JSON.stringify(r.params[key]))).size > 1;
  $("#compare").className = `compare cols-${chosen.length}`;
  $("#compare").replaceChildren(...chosen.map((r) => h("div", { class: "compare-item", "data-key": r.key },
    h("img", { src: r.url, alt: clipped(r.params.prompt) || "generated image" }),
    h("div", {}, h("strong", {}, r.model), r.width ? ` · ${r.width}×${r.height}` : ""),
    h("table", { class: "params" }, ...keys.map((k) => h("tr", { class: differs(k) ? "diff" : "" },
      h("th", {}, k), h("td", {}, r.params[k] === undefined ? "—" : shown(r.params[k]))))))));
}

function rerun(result) {
  if ($("#run").disabled) {  // a run is in flight: its form stays as it was sent
    showError("A run is in progress; re-run once it has finished.");
    return;
  }
  pickModel(result.model, result.params);
  state.missingUploads = result.missing || [];  // an upload this tab does not have: asked for
  $("#count").value = "1";
  if (result.mode) document.querySelector(`input[name=mode][value=${result.mode}]`).checked = true;
  renderSnippets();
  showTab("results");
  run();
}

// ---- history --------------------------------------------------------------------------------

async function loadHistory() {
  const tbody = $("#history tbody");
  try {
    const page = await api("GET", `/api/ai/generations?page=${state.historyPage}&page_size=20`);
    $("#history-page").textContent = `page ${page.page_number} of ${Math.max(page.total_pages, 1)}` +
      ` · ${page.total_entries} generations`;
    $("#history-prev").disabled = page.page_number <= 1;
    $("#history-next").disabled = page.page_number >= page.total_pages;
    tbody.replaceChildren(...page.generations.map(historyRow));
  } catch (error) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: "7", class: "error" }, describe(error))));
  }
}

function historyRow(row) {
  const when = new Date(row.enqueued_at * 1000).toLocaleString();
  const thumb = row.result_url ? h("img", { src: row.result_url, alt: "", class: "thumb", loading: "lazy" }) : "";
  return h("tr", { "data-generation": row.generation_id },
    h("td", {}, thumb), h("td", {}, when), h("td", {}, row.model_name),
    h("td", { class: "prompt" }, clipped(row.prompt, 200)),
    h("td", {}, row.status === "failed" ? `failed: ${row.error_message}` : row.status),
    h("td", {}, row.seed ?? ""),
    h("td", { class: "actions" },
      h("button", { type: "button", onclick: () => openInForm(row) }, "Open in form"),
      row.status === "succeeded"
        ? h("button", { type: "button", class: "to-results", onclick: (event) => toResults(row, event.target) },
          "Add to results")
        : ""));
}

/** A past generation's images into the gallery, where they can be compared and re-run. */
function toResults(row, button) {
  addResults(rowResults(row, null));  // a re-run goes as the form says
  button.disabled = true;
  button.textContent = "in results";
}

function openInForm(row) {
  const { params, missing } = withUploads(row.generation_id, rowParams(row));
  pickModel(row.model_name, params);
  state.missingUploads = missing;
  showTab("results");
  showError(missing.length ? `${missing.join(", ")}: the uploaded file of that run is not kept ` +
    "by the server; choose the file again." : "");
}

// ---- the API tab ----------------------------------------------------------------------------

function renderSnippets() {
  if ($("#tab-api").hidden) return;  // made when the tab shows (a 3 MB upload made typing lag)
  const base = window.location.origin;
  const body = bodies();
  const current = document.querySelector("[data-snippet-tab][aria-selected=true]").dataset.snippetTab;
  const problem = !state.model ? "no model is picked" : state.form.problem();
  $("#snippets-warning").textContent = problem
    ? `As the form stands, the server will refuse this request (${problem}).` : "";
  $("#snippets").replaceChildren(...Object.entries(SNIPPETS).map(([name, make]) => {
    const text = make(base, body, mode());
    const status = h("span", { class: "muted copy-status" });
    const copy = h("button", { type: "button", class: "copy", onclick: async () => {
      status.textContent = (await copyText(text)) ? "copied" : "copy failed: select the text";
    } }, "Copy");
    return h("section", { class: "snippet", "data-snippet": name, hidden: name !== current },
      h("div", { class: "toolbar" }, copy, status), h("pre", {}, h("code", {}, text)));
  }));
}

// ---- tabs, key, start -----------------------------------------------------------------------

function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    $(`#tab-${tab.dataset.tab}`).hidden = tab.dataset.tab !== name;
  }
  if (name === "history") loadHistory();
  if (name === "compare") renderCompare();
  if (name === "api") renderSnippets();
}

/** Left and right arrows (Home, End) move along a tab list, as in any tab widget. */
function arrowKeys(list) {
  list.addEventListener("keydown", (event) => {
    const tabs = [...list.querySelectorAll("[role=tab]")];
    const at = tabs.indexOf(document.activeElement);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault();
    const tab = tabs[(to + tabs.length) % tabs.length];
    tab.focus();
    tab.click();
  });
}

function bind() {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  for (const tab of document.querySelectorAll("[data-snippet-tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[data-snippet-tab]")) {
        other.setAttribute("aria-selected", String(other === tab));
      }
      renderSnippets();
    });
  }
  document.querySelectorAll("[role=tablist]").forEach(arrowKeys);
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim().replace(/^Bearer\s+/i, "");  // a pasted header value
    $("#api-key").value = key;
    if (key !== apiKey.get()) dropKeyState();
    apiKey.set(key);
    $("#key-state").textContent = "checking the key…";
    stopStream();
    loadModels();
  });
  $("#key-forget").addEventListener("click", () => {
    apiKey.set("");
    $("#api-key").value = "";
    $("#key-state").textContent = "key forgotten";
    stopStream();
    clearModels();
    dropKeyState();
  });
  $("#jobs-clear").addEventListener("click", clearFinishedJobs);
  $("#model").addEventListener("change", (event) => pickModel(event.target.value));
  $("#params").addEventListener("submit", run);
  $("#params").addEventListener("input", renderSnippets);
  $("#params").addEventListener("change", renderSnippets);
  $("#compare-selected").addEventListener("click", () => showTab("compare"));
  $("#history-refresh").addEventListener("click", loadHistory);
  $("#history-prev").addEventListener("click", () => { state.historyPage -= 1; loadHistory(); });
  $("#history-next").addEventListener("click", () => { state.historyPage += 1; loadHistory(); });
}

bind();
$("#api-key").value = apiKey.get();
renderSnippets();
loadModels();  // without a key: a server with auth answers 401 (NO_KEY), one without lists its models
