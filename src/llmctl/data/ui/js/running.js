// Running: the loaded engines from Ollama's /api/ps (with llmctl's fields: processor, requests in flight,
// requests served), a live keep-alive countdown, and load / unload (an empty /api/generate, as `llmctl load`
// and `llmctl unload` send it).

import { $, h, clear, cell, bytes, duration, fillSelect } from "./dom.js";

let ctx;
let rows = [];
let timer = null;

async function refresh() {
  try {
    rows = (await ctx.api.get("/api/ps")).models;
    render();
  } catch (err) {
    ctx.notify(`Could not read the running models: ${err.message}`);
  }
}

function until(row) {
  if (row.keep_alive_forever) return "Forever";
  const left = (Date.parse(row.expires_at) - Date.now()) / 1000;
  if (row.active > 0) return "after its requests";
  return left > 0 ? duration(left) : "Stopping…";
}

function render() {
  const body = clear($("#running-table tbody"));
  for (const r of rows) {
    const vram = r.size_vram || 0;
    body.append(h("tr", { dataset: { name: r.name, mode: r.mode } },
      h("td", { class: "name" }, h("strong", { text: r.name }),
        r.mode !== "generate" ? h("span", { class: "muted small", text: ` ${r.mode}` }) : null),
      cell("Processor", r.processor || "–"),
      cell("RAM", bytes(Math.max(0, r.size - vram))),
      cell("VRAM", vram ? bytes(vram) : "–"),
      cell("Context", r.context_length ? r.context_length.toLocaleString() : "–"),
      h("td", { "data-label": "Unloads in", class: "until", text: until(r) }),
      cell("In flight", String(r.active ?? 0)),
      cell("Served", String(r.requests ?? 0)),
      h("td", { class: "actions" }, h("button", {
        type: "button", "aria-label": `Unload ${r.name}`, text: "Unload", onclick: () => unload(r.name),
      })),
    ));
  }
  $("#running-empty").hidden = rows.length > 0;
  const ram = rows.reduce((s, r) => s + Math.max(0, r.size - (r.size_vram || 0)), 0);
  const vram = rows.reduce((s, r) => s + (r.size_vram || 0), 0);
  $("#running-summary").textContent = rows.length
    ? `${rows.length} engine${rows.length === 1 ? "" : "s"}, ${bytes(ram)} RAM${vram ? `, ${bytes(vram)} VRAM` : ""}` : "";
}

function tick() {
  const cells = document.querySelectorAll("#running-table td.until");
  rows.forEach((r, i) => { if (cells[i]) cells[i].textContent = until(r); });
}

async function unload(name) {
  try {
    await ctx.api.post("/api/generate", { model: name, keep_alive: 0 });
    ctx.notify(`Unloaded ${name}`, "ok");
  } catch (err) {
    ctx.notify(`Could not unload ${name}: ${err.message}`);
  }
  refresh();
}

async function load(e) {
  e.preventDefault();
  const name = $("#load-model").value;
  const raw = $("#load-keep-alive").value.trim();
  const body = { model: name };
  if (raw) body.keep_alive = /^-?\d+$/.test(raw) ? Number(raw) : raw;
  const button = e.submitter || $("#load-form button");
  button.disabled = true;
  ctx.notify(`Loading ${name}…`, "info");
  try {
    const answer = await ctx.api.post("/api/generate", body);
    const seconds = answer.load_duration / 1e9;
    ctx.notify(seconds >= 0.05 ? `Loaded ${name} in ${seconds.toFixed(1)} s` : `${name} was already loaded`, "ok");
  } catch (err) {
    ctx.notify(`Could not load ${name}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
  refresh();
}

export default {
  init(c) {
    ctx = c;
    $("#load-form").addEventListener("submit", load);
  },
  async show() {
    refresh();
    ctx.api.get("/api/llmctl/models").then(({ models }) => fillSelect($("#load-model"), models.map((m) => m.name)))
      .catch((err) => ctx.notify(`Could not list models: ${err.message}`));
    let n = 0;
    timer = setInterval(() => { tick(); if (++n % 3 === 0) refresh(); }, 1000);
  },
  hide() {
    clearInterval(timer);
    timer = null;
  },
};
