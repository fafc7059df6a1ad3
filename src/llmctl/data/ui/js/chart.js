// A sparkline as inline SVG, drawn by hand: no library, nothing but this origin (the page's CSP allows no
// inline style, so looks come from classes in console.css).

const SVG = "http://www.w3.org/2000/svg";
const W = 240;
const H = 56;

function el(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// `values`: numbers (null for "no data"), oldest first, drawn right-aligned in `slots` places (so time runs at
// one pace while the history fills up); `label` says what it is for screen readers.
export function sparkline(values, { label, unit = "", digits = 1, slots = values.length }) {
  const known = values.filter((v) => Number.isFinite(v));
  const now = known.length ? known[known.length - 1] : null;
  const top = Math.max(1e-9, ...known);
  const step = W / Math.max(1, slots - 1);
  const offset = Math.max(0, slots - values.length);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img",
    "aria-label": `${label}: ${now === null ? "no data" : `${now.toFixed(digits)} ${unit}`} now, at most ${top.toFixed(digits)}` });
  svg.append(el("line", { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: "axis" }));
  const points = [];
  values.forEach((v, i) => {
    if (Number.isFinite(v)) points.push(`${((offset + i) * step).toFixed(1)},${(H - 2 - (v / top) * (H - 8)).toFixed(1)}`);
  });
  if (points.length) {
    svg.append(el("polyline", { points: points.join(" "), class: "line" }));
    const [x, y] = points[points.length - 1].split(",");
    svg.append(el("circle", { cx: x, cy: y, r: 2.5, class: "dot" }));  // the latest value, seen even when alone
  }
  return svg;
}
