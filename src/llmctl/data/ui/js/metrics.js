// Metrics & logs: samples /api/llmctl/stats (the gateway's own counters, per model) every few seconds and draws
// tokens/s, requests per minute, queue depth and time to first token from the differences, as small charts;
// and follows a running model's engine log.

import { $, h, clear, fillSelect, number } from "./dom.js";
import { sparkline } from "./chart.js";

const EVERY = 2000; // ms between samples
const KEEP = 90; // samples kept: 3 minutes
let ctx;
const samples = [];
let visible = false;
let sampler = null;
let logTimer = null;
let logOffset = null;
let logModel = "";

async function sample() {
  clearTimeout(sampler);
  try {
    const snap = await ctx.api.get("/api/llmctl/stats");
    samples.push(snap);
    if (samples.length > KEEP) samples.shift();
    if (visible) draw();
  } catch (err) {
    if (visible) ctx.notify(`Could not read the metrics: ${err.message}`);
  }
  sampler = setTimeout(sample, EVERY);
}

function series(model, pick) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1].models.find((m) => m.model === model);
    const b = samples[i].models.find((m) => m.model === model);
    out.push(b ? pick(a, b, samples[i].time - samples[i - 1].time) : null);
  }
  return out;
}

const RATE = (key, scale = 1) => (a, b, dt) => (a && dt > 0 ? Math.max(0, (b[key] - a[key]) / dt) * scale : null);
const CHARTS = [
  { title: "tokens/s", unit: "tokens/s", pick: RATE("generated_tokens") },
  { title: "requests/min", unit: "requests/min", pick: RATE("requests", 60) },
  { title: "queue depth", unit: "waiting", digits: 0, pick: (a, b) => b.queued },
  { title: "TTFT", unit: "ms", digits: 0,
    pick: (a, b) => (a && b.ttft_count > a.ttft_count ? ((b.ttft_sum - a.ttft_sum) / (b.ttft_count - a.ttft_count)) * 1000 : null) },
];

function draw() {
  const last = samples[samples.length - 1];
  if (!last) return;
  const wrap = clear($("#charts"));
  // models that ran: loaded now, or that generated (pulls, tags and deletes also count requests per model)
  const shown = last.models.filter((m) => m.loaded || m.generated_tokens > 0 || m.prompt_tokens > 0);
  for (const m of shown) {
    const figure = h("figure", { class: "model-charts", dataset: { model: m.model } },
      h("figcaption", {}, h("strong", { text: m.model }),
        h("span", { class: "muted small",
          text: ` ${m.loaded ? `loaded, ${m.active} in flight of ${m.slots} slots` : "not loaded"} · ${m.requests} requests · ${m.generated_tokens} tokens` })));
    const grid = h("div", { class: "chart-grid" });
    for (const c of CHARTS) {
      const values = series(m.model, c.pick);
      const known = values.filter((v) => Number.isFinite(v));
      const now = known[known.length - 1];
      grid.append(h("div", { class: "chart", dataset: { chart: c.title, max: known.length ? Math.max(...known) : "" } },
        h("div", { class: "chart-head" }, h("span", { text: c.title }),
          h("span", { class: "value", text: now === undefined ? "–" : number(now, c.digits ?? 1) })),
        sparkline(values, { label: `${m.model} ${c.title}`, unit: c.unit, digits: c.digits ?? 1, slots: Math.min(KEEP - 1, Math.max(30, values.length)) })));
    }
    figure.append(grid);
    wrap.append(figure);
  }
  $("#charts-empty").hidden = shown.length > 0;
  $("#metrics-summary").textContent = `${last.in_flight} in flight · ${last.requests} requests served`;
  const loaded = last.models.filter((m) => m.loaded).map((m) => m.model);
  if (logModel && !loaded.includes(logModel)) loaded.push(logModel);
  fillSelect($("#log-model"), loaded, logModel);
  if (!logModel && loaded.length) follow(loaded[0]);
}

function follow(model) {
  logModel = model;
  logOffset = null;
  clear($("#log-text"));
  $("#log-name").textContent = "";
  clearTimeout(logTimer);
  if (model) readLog();
}

async function readLog() {
  clearTimeout(logTimer);
  if (!visible || !logModel) return;
  const model = logModel;
  const query = new URLSearchParams({ model });
  if (logOffset !== null) query.set("offset", logOffset);
  try {
    const piece = await ctx.api.get(`/api/llmctl/logs?${query}`);
    if (model !== logModel) return;
    const pre = $("#log-text");
    if (logOffset !== null && piece.log !== $("#log-name").textContent) {
      logOffset = null; // another engine of the model (a restart): read its log from the start of its tail
      return readLog();
    }
    if (piece.reset) pre.textContent = "";
    if (piece.text) {
      pre.append(piece.text);
      if (pre.textContent.length > 400000) pre.textContent = pre.textContent.slice(-300000);
      if ($("#log-follow").checked) pre.scrollTop = pre.scrollHeight;
    }
    logOffset = piece.offset;
    $("#log-name").textContent = piece.log;
  } catch (err) {
    ctx.notify(`Could not read the log of ${model}: ${err.message}`);
  }
  if ($("#log-follow").checked) logTimer = setTimeout(readLog, 1000);
}

export default {
  init(c) {
    ctx = c;
    $("#log-model").addEventListener("change", (e) => follow(e.target.value));
    $("#log-follow").addEventListener("change", (e) => { if (e.target.checked) readLog(); });
    $("#log-form").addEventListener("submit", (e) => e.preventDefault());
  },
  sample,
  show() {
    visible = true;
    draw();
    readLog();
  },
  hide() {
    visible = false;
    clearTimeout(logTimer);
  },
};
