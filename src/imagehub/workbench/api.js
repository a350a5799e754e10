// The HTTP side of the Workbench: the key (session storage only), JSON calls, the event stream.

const KEY_SLOT = "imagehub.apiKey";

/** The API key lives in this tab's sessionStorage and in Authorization headers, nowhere else. */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_SLOT) || "",
  set: (value) => {
    if (value) sessionStorage.setItem(KEY_SLOT, value);
    else sessionStorage.removeItem(KEY_SLOT);
  },
};

/** No answer came (the server is down, the network is out): what fetch itself threw. */
export class NetworkError extends Error {}

export class ApiError extends Error {
  constructor(status, body, text) {
    const error = (body && body.error) || {};
    super(error.detail || text || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || "http_error";
    this.detail = error.detail || text || "";
  }
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const key = apiKey.get();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

/** One JSON call; throws ApiError with the server's `detail` on an error answer. */
export async function call(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch (error) {
    throw new NetworkError(String(error));
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data, text);
  return data;
}

/**
 * GET /api/events read with fetch (EventSource cannot send an Authorization header).
 * Reconnects after a drop with Last-Event-ID; stops on an API error (a bad key).
 */
export class EventStream {
  constructor(onEvent, onState = () => {}) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = null;
    this.controller = null;
    this.running = false;
  }

  start() {
    if (this.running) return this.ready;
    this.running = true;
    this.ready = new Promise((resolve) => (this._resolveReady = resolve));
    this._loop();
    return this.ready;
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  }

  async _loop() {
    while (this.running) {
      this.controller = new AbortController();
      try {
        const extra = { Accept: "text/event-stream" };
        if (this.lastEventId) extra["Last-Event-ID"] = this.lastEventId;
        const response = await fetch("/api/events", {
          headers: headers(extra), cache: "no-store", credentials: "omit",
          signal: this.controller.signal,
        });
        if (!response.ok) {
          const text = await response.text();
          let body = null;
          try { body = JSON.parse(text); } catch { body = null; }
          throw new ApiError(response.status, body, text);
        }
        this.onState("live");
        this._resolveReady();
        await this._read(response.body.pipeThrough(new TextDecoderStream()).getReader());
      } catch (error) {
        if (error instanceof ApiError) {
          this.running = false;
          this.onState("error", error);
          this._resolveReady();
          return;
        }
      }
      if (!this.running) break;
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    this.onState("closed");
  }

  async _read(reader) {
    let buffer = "";
    let event = { name: "", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.id !== null) this.lastEventId = event.id;
          if (event.data.length) this._dispatch(event);
          event = { name: "", data: [], id: null };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event.name = text;
          else if (field === "data") event.data.push(text);
          else if (field === "id") event.id = text;
        }
      }
    }
  }

  _dispatch(event) {
    let data;
    try {
      data = JSON.parse(event.data.join("\n"));
    } catch {
      return;
    }
    this.onEvent(event.name || "message", data, event.id);
  }
}
