// Chat playground: Ollama's /api/chat, streamed. Each answer shows its time to first token (measured here,
// from send to the first piece of text, so it includes a model load) and its generation speed (from the
// gateway's eval_count / eval_duration; estimated from the pieces received when the answer was stopped).
// Stop aborts the fetch; the gateway sees the client go and closes the engine's request, freeing its slot.

import { $, h, clear, fillSelect, number } from "./dom.js";

let ctx;
let history = [];
let controller = null;

function options() {
  const out = {};
  const read = (id, key, parse) => {
    const raw = $(id).value.trim();
    if (raw !== "" && Number.isFinite(parse(raw))) out[key] = parse(raw);
  };
  read("#chat-temperature", "temperature", Number);
  read("#chat-top-p", "top_p", Number);
  read("#chat-max-tokens", "num_predict", (v) => parseInt(v, 10));
  return out;
}

function bubble(role, text = "") {
  const body = h("div", { class: "text", text });
  const el = h("li", { class: `msg ${role}` }, h("span", { class: "who", text: role === "user" ? "You" : "Model" }), body);
  $("#chat-log").append(el);
  el.scrollIntoView({ block: "end" });
  return { el, body };
}

function busy(on) {
  $("#chat-send").disabled = on;
  $("#chat-stop").disabled = !on;
  $("#chat-log").setAttribute("aria-busy", String(on)); // screen readers read the answer once, not every token
}

async function send(e) {
  e.preventDefault();
  const input = $("#chat-input");
  const text = input.value.trim();
  const model = $("#chat-model").value;
  if (!text || !model || controller) return;
  input.value = "";
  history.push({ role: "user", content: text });
  bubble("user", text);
  const answer = bubble("assistant");
  answer.el.classList.add("streaming");
  const system = $("#chat-system").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...history] : [...history];
  controller = new AbortController();
  busy(true);
  const sent = performance.now();
  let first = null;
  let pieces = 0;
  let content = "";
  let final = null;
  let outcome = "";
  try {
    for await (const obj of ctx.api.stream("/api/chat", { model, messages, stream: true, options: options() },
      controller.signal)) {
      if (obj.error) throw new Error(obj.error);
      const piece = obj.message?.content || "";
      if (piece) {
        first ??= performance.now();
        pieces++;
        content += piece;
        answer.body.textContent = content;
        answer.el.scrollIntoView({ block: "end" });
      }
      if (obj.done) final = obj;
    }
    outcome = final?.done_reason === "length" ? "max tokens reached" : "";
  } catch (err) {
    if (err.name === "AbortError") outcome = "stopped";
    else {
      outcome = "failed";
      answer.el.append(h("p", { class: "error", text: err.message }));
    }
  } finally {
    controller = null;
    busy(false);
    answer.el.classList.remove("streaming");
  }
  history.push({ role: "assistant", content });
  answer.el.append(statsLine(sent, first, pieces, final, outcome));
}

function statsLine(sent, first, pieces, final, outcome) {
  const ttft = first === null ? null : first - sent;
  let tps = null;
  let tokens = pieces;
  if (final && final.eval_duration > 0) {
    tokens = final.eval_count;
    tps = final.eval_count / (final.eval_duration / 1e9);
  } else if (first !== null && pieces > 1) {
    tps = (pieces - 1) / ((performance.now() - first) / 1000);
  }
  const load = final ? final.load_duration / 1e9 : 0;
  const parts = [`TTFT ${ttft === null ? "–" : `${Math.round(ttft)} ms`}${load >= 0.05 ? ` (${number(load)} s of it loading)` : ""}`,
    `${number(tps)} tokens/s`, `${tokens} token${tokens === 1 ? "" : "s"}`];
  if (outcome) parts.push(outcome);
  return h("p", {
    class: "stats", dataset: { ttftMs: ttft === null ? "" : Math.round(ttft), tokensPerSecond: tps === null ? "" : tps.toFixed(2),
      outcome: outcome || "done" },
    text: parts.join(" · "),
  });
}

function stop() {
  if (controller) controller.abort();
}

function reset() {
  stop();
  history = [];
  clear($("#chat-log"));
}

let wanted = null;

export default {
  init(c) {
    ctx = c;
    $("#chat-form").addEventListener("submit", send);
    $("#chat-stop").addEventListener("click", stop);
    $("#chat-new").addEventListener("click", reset);
    $("#chat-settings").addEventListener("submit", (e) => e.preventDefault());
    $("#chat-input").addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      $("#chat-form").requestSubmit();
    });
    window.addEventListener("llmctl:chat-with", (e) => { wanted = e.detail; });
  },
  async show() {
    try {
      const { models } = await ctx.api.get("/api/llmctl/models");
      fillSelect($("#chat-model"), models.map((m) => m.name), wanted || $("#chat-model").value);
      wanted = null;
    } catch (err) {
      ctx.notify(`Could not list models: ${err.message}`);
    }
    $("#chat-input").focus();
  },
  hide() {},
};
