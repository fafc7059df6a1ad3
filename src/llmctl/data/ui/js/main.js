// The console's shell: hash routing between the five pages, the shared dialogs (API key, confirm) and the
// notice line. Each page is a module with init(ctx) / show() / hide(); only the visible page polls.

import * as api from "./api.js";
import { $ } from "./dom.js";
import models from "./models.js";
import running from "./running.js";
import transfers from "./transfers.js";
import chat from "./chat.js";
import metrics from "./metrics.js";

const PAGES = { models, running, transfers, chat, metrics };
const TITLES = { models: "Models", running: "Running", transfers: "Pull / push", chat: "Chat", metrics: "Metrics & logs" };
let current = null;

function notify(message, kind = "error") {
  const el = $("#notice");
  el.textContent = message;
  el.className = `notice ${kind}`;
  el.hidden = !message;
  clearTimeout(notify.timer);
  if (message && kind !== "error") notify.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

// A modal yes/no with our own <dialog> (window.confirm cannot be styled or labelled).
function confirm(text, action = "Delete") {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = action;
  return new Promise((resolve) => {
    const done = (answer) => { cleanup(); dialog.close(); resolve(answer); };
    const onSubmit = (e) => { e.preventDefault(); done(true); };
    const onCancel = () => done(false);
    const onClose = () => { cleanup(); resolve(false); };
    function cleanup() {
      $("#confirm-form").removeEventListener("submit", onSubmit);
      $("#confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
    }
    $("#confirm-form").addEventListener("submit", onSubmit);
    $("#confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
  });
}

function askKey() {
  const dialog = $("#key-dialog");
  $("#key-input").value = "";
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
}

function route() {
  const name = PAGES[location.hash.slice(1)] ? location.hash.slice(1) : "models";
  if (current && current !== name) PAGES[current].hide();
  for (const page of Object.keys(PAGES)) $(`#page-${page}`).hidden = page !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${TITLES[name]} · llmctl`;
  current = name;
  PAGES[name].show();
}

async function start() {
  $("#key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    api.setApiKey($("#key-input").value.trim());
    $("#key-dialog").close();
    notify("");
    if (current) PAGES[current].show();
  });
  $("#key-button").addEventListener("click", askKey);
  window.addEventListener("llmctl:unauthorized", () => {
    api.setApiKey("");
    notify("The gateway refused the API key: enter it again.");
    askKey();
  });
  const ctx = { api, notify, confirm, go: (page) => { location.hash = `#${page}`; } };
  for (const page of Object.values(PAGES)) page.init(ctx);
  try {
    if (await api.keyRequired()) {
      $("#key-button").hidden = false;
      if (!api.apiKey()) await askKey();
    }
  } catch (err) {
    notify(`The gateway does not answer: ${err.message}`);
  }
  window.addEventListener("hashchange", route);
  route();
  metrics.sample();
}

start();
