// Small DOM and formatting helpers shared by every view. Text always goes in as textContent: model names,
// logs and answers are data, never markup.

export const $ = (sel, root = document) => root.querySelector(sel);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const UNITS = ["B", "KB", "MB", "GB", "TB"];

export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export function ago(epochSeconds) {
  if (!epochSeconds) return "–";
  const s = Date.now() / 1000 - epochSeconds;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

export function number(n, digits = 1) {
  return Number.isFinite(n) ? n.toFixed(digits) : "–";
}

// A table cell that also says what it is, for the phone layout (CSS shows data-label before the value).
export function cell(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

// Replace a <select>'s options with `values`, keeping the choice when it is still there.
export function fillSelect(select, values, keep = select.value) {
  const same = select.options.length === values.length && values.every((v, i) => select.options[i].value === v);
  if (!same) clear(select);
  if (same) { if (values.includes(keep)) select.value = keep; return; }
  for (const v of values) select.append(h("option", { value: v, text: v }));
  if (values.includes(keep)) select.value = keep;
}
