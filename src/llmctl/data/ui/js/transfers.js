// Pull / push: start a job (/api/llmctl/transfers) and watch every job's progress: bytes, rate, ETA. The
// jobs live in the gateway, so a reload (or a second tab) finds them where they are.

import { $, h, clear, bytes, duration } from "./dom.js";

let ctx;
let timer = null;
const seen = new Map(); // job id -> last state, to notice a pull that just finished

function line(job) {
  const p = job.progress;
  const parts = [];
  if (p.total) parts.push(`${bytes(p.completed)} / ${bytes(p.total)}`);
  else if (p.completed) parts.push(bytes(p.completed));
  if (job.state === "running" && p.rate) parts.push(`${bytes(p.rate)}/s`);
  if (job.state === "running" && p.eta !== null) parts.push(`ETA ${duration(p.eta)}`);
  if (job.state !== "running" && job.finished_at) parts.push(`took ${duration(job.finished_at - job.started_at)}`);
  return parts.join(" · ");
}

function item(job) {
  const p = job.progress;
  const label = `${job.kind} ${job.model}`;
  const bar = h("progress", { max: p.total || 1, "aria-label": `${label} progress` });
  if (p.total || job.state !== "running") bar.value = job.state === "succeeded" ? (p.total || 1) : p.completed;
  return h("li", { class: `transfer ${job.state}`, dataset: { id: job.id, state: job.state, model: job.model } },
    h("div", { class: "row between" },
      h("span", {}, h("strong", { text: `${job.kind === "pull" ? "Pull" : "Push"} ` }), h("code", { text: job.model })),
      h("span", { class: `state ${job.state}`, text: job.state })),
    bar,
    h("div", { class: "row between small" },
      h("span", { class: "bytes", text: line(job) }),
      h("span", { class: "muted phase", text: job.state === "running" ? p.phase : "" })),
    job.error ? h("p", { class: "error", role: "status", text: job.error }) : null,
    job.state === "running" ? h("button", {
      type: "button", class: "quiet", "aria-label": `Cancel ${label}`, text: "Cancel", onclick: () => cancel(job),
    }) : null);
}

async function refresh() {
  let jobs;
  try {
    jobs = (await ctx.api.get("/api/llmctl/transfers")).transfers;
  } catch (err) {
    ctx.notify(`Could not read the transfers: ${err.message}`);
    return schedule(3000);
  }
  const list = clear($("#transfer-list"));
  for (const job of jobs) list.append(item(job));
  $("#transfers-empty").hidden = jobs.length > 0;
  $("#transfers-clear").hidden = !jobs.some((j) => j.state !== "running");
  for (const job of jobs) {
    if (seen.get(job.id) === "running" && job.state === "succeeded") {
      ctx.notify(`${job.kind === "pull" ? "Pulled" : "Pushed"} ${job.model}`, "ok");
    }
    seen.set(job.id, job.state);
  }
  schedule(jobs.some((j) => j.state === "running") ? 500 : 3000);
}

function schedule(ms) {
  clearTimeout(timer);
  if (timer !== null) timer = setTimeout(refresh, ms);
}

async function start(e) {
  e.preventDefault();
  const model = $("#transfer-model").value.trim();
  const kind = $("#transfer-kind").value;
  try {
    await ctx.api.post("/api/llmctl/transfers", { kind, model, insecure: $("#transfer-insecure").checked });
    $("#transfer-model").value = "";
  } catch (err) {
    ctx.notify(`Could not start the ${kind} of ${model}: ${err.message}`);
  }
  refresh();
}

async function cancel(job) {
  try {
    await ctx.api.post(`/api/llmctl/transfers/${encodeURIComponent(job.id)}/cancel`, {});
  } catch (err) {
    ctx.notify(`Could not cancel: ${err.message}`);
  }
  refresh();
}

async function clearFinished() {
  try {
    await ctx.api.post("/api/llmctl/transfers/clear", {});
  } catch (err) {
    ctx.notify(`Could not clear: ${err.message}`);
  }
  refresh();
}

export default {
  init(c) {
    ctx = c;
    $("#transfer-form").addEventListener("submit", start);
    $("#transfers-clear").addEventListener("click", clearFinished);
  },
  show() {
    timer = 0;
    refresh();
  },
  hide() {
    clearTimeout(timer);
    timer = null;
  },
};
