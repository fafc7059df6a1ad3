// The gateway client of the console: JSON calls and NDJSON streams on this origin, with the API key (when the
// gateway has one) sent as `Authorization: Bearer`. The key lives in sessionStorage: it dies with the tab and
// never appears in a URL. Errors come back as ApiError with the gateway's one-line message.

const KEY = "llmctl.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function headers(withBody) {
  const out = { Accept: "application/json" };
  if (withBody) out["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

// Whether the gateway wants a key: asked of a public file, so the page learns it without a refused call.
export async function keyRequired() {
  const r = await fetch("auth.json", { cache: "no-store" });
  return r.ok && (await r.json()).key_required === true;
}

async function errorOf(response) {
  let message = `HTTP ${response.status}`;
  try {
    const data = await response.json();
    const err = data.error;
    message = typeof err === "string" ? err : (err && err.message) || message;
  } catch { /* not JSON: keep the status */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("llmctl:unauthorized"));
  return new ApiError(response.status, message);
}

function send(method, path, body, signal) {
  const write = method !== "GET" && method !== "HEAD";
  return fetch(path, {
    method, headers: headers(write), body: write ? JSON.stringify(body ?? {}) : undefined, signal,
    cache: "no-store", credentials: "same-origin", redirect: "error",
  });
}

export async function call(method, path, body, { signal } = {}) {
  const response = await send(method, path, body, signal);
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, opts) => call("GET", path, undefined, opts);
export const post = (path, body, opts) => call("POST", path, body, opts);

// POST and read the answer as NDJSON, one parsed object at a time, as the gateway streams them.
export async function* stream(path, body, signal) {
  const response = await send("POST", path, body, signal);
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (pending.trim()) yield JSON.parse(pending);
}
