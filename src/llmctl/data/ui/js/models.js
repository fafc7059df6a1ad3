// Models: what the store holds (the fields of `llmctl list --json` plus each model's details), a model's
// Modelfile, template, parameters and license, and tag / delete.

import { $, h, clear, cell, bytes, ago } from "./dom.js";

let ctx;

async function refresh() {
  try {
    const { models } = await ctx.api.get("/api/llmctl/models");
    render(models);
  } catch (err) {
    ctx.notify(`Could not list models: ${err.message}`);
  }
}

function render(models) {
  const body = clear($("#models-table tbody"));
  for (const m of models) {
    const name = h("td", { class: "name" }, h("strong", { text: m.name }));
    if (m.tags.length) name.append(h("span", { class: "muted small", text: ` also ${m.tags.join(", ")}` }));
    body.append(h("tr", { dataset: { name: m.name, digest: m.digest, size: m.size } },
      name,
      cell("ID", h("code", { title: m.digest, text: m.id })),
      cell("Size", h("span", { title: `${m.size} bytes`, text: bytes(m.size) })),
      cell("Family", m.family || "–"),
      cell("Parameters", m.parameters || "–"),
      cell("Quantization", m.quantization || "–"),
      cell("Format", m.format || "–"),
      cell("Modified", h("span", { title: new Date(m.modified * 1000).toLocaleString(), text: ago(m.modified) })),
      h("td", { class: "actions" },
        h("button", { type: "button", "aria-label": `Show ${m.name}`, onclick: () => show(m), text: "Show" }),
        h("button", { type: "button", "aria-label": `Chat with ${m.name}`, onclick: () => chatWith(m), text: "Chat" }),
        h("button", { type: "button", "aria-label": `Tag ${m.name}`, onclick: () => tag(m), text: "Tag" }),
        h("button", { type: "button", class: "danger", "aria-label": `Delete ${m.name}`, onclick: () => remove(m),
          text: "Delete" })),
    ));
  }
  $("#models-empty").hidden = models.length > 0;
  const total = models.reduce((sum, m) => sum + m.size, 0);
  $("#models-summary").textContent = `${models.length} model${models.length === 1 ? "" : "s"}, ${bytes(total)}`;
}

async function show(m) {
  const dialog = $("#show-dialog");
  $("#show-title").textContent = m.name;
  const facts = clear($("#show-facts"));
  const sections = clear($("#show-sections"));
  const rows = [["Reference", m.reference], ["Digest", m.digest], ["Size", `${bytes(m.size)} (${m.size} bytes)`],
    ["Family", m.family], ["Parameters", m.parameters], ["Quantization", m.quantization], ["Format", m.format],
    ["Context", m.context_length ? m.context_length.toLocaleString() : ""], ["Other names", m.tags.join(", ")]];
  for (const [k, v] of rows) if (v) facts.append(h("dt", { text: k }), h("dd", { text: v }));
  dialog.showModal();
  try {
    const info = await ctx.api.post("/api/show", { model: m.name });
    const parts = [["Modelfile", info.modelfile, true], ["Template", info.template], ["System", info.system],
      ["Parameters", info.parameters], ["License", info.license]];
    for (const [title, text, open] of parts) {
      sections.append(h("details", { open: open || false, dataset: { section: title.toLowerCase() } },
        h("summary", { text: title }),
        text ? h("pre", { class: "block", tabindex: "0", text }) : h("p", { class: "muted", text: "none" })));
    }
  } catch (err) {
    sections.append(h("p", { class: "error", text: `Could not read the model: ${err.message}` }));
  }
}

function chatWith(m) {
  window.dispatchEvent(new CustomEvent("llmctl:chat-with", { detail: m.name }));
  ctx.go("chat");
}

function tag(m) {
  const dialog = $("#tag-dialog");
  $("#tag-source").textContent = m.name;
  const input = $("#tag-input");
  input.value = m.name.replace(/:[^:/]*$/, "") + ":copy";
  const form = $("#tag-form");
  const onSubmit = async (e) => {
    e.preventDefault();
    try {
      await ctx.api.post("/api/copy", { source: m.name, destination: input.value.trim() });
      dialog.close();
      ctx.notify(`Tagged ${m.name} as ${input.value.trim()}`, "ok");
      refresh();
    } catch (err) {
      ctx.notify(`Could not tag ${m.name}: ${err.message}`);
    }
  };
  form.addEventListener("submit", onSubmit);
  dialog.addEventListener("close", () => form.removeEventListener("submit", onSubmit), { once: true });
  dialog.showModal();
  input.select();
}

async function remove(m) {
  const others = m.tags.length ? ` Its other names (${m.tags.join(", ")}) keep the weights.` : "";
  if (!await ctx.confirm(`Delete ${m.name}? This removes the name and, unless another name uses them, its files.${others}`)) return;
  try {
    await ctx.api.call("DELETE", "/api/delete", { model: m.name });
    ctx.notify(`Deleted ${m.name}`, "ok");
  } catch (err) {
    ctx.notify(`Could not delete ${m.name}: ${err.message}`);
  }
  refresh();
}

export default {
  init(c) {
    ctx = c;
    $("#models-refresh").addEventListener("click", refresh);
    $("#show-close").addEventListener("click", () => $("#show-dialog").close());
    $("#tag-cancel").addEventListener("click", () => $("#tag-dialog").close());
  },
  show: refresh,
  hide() {},
};
