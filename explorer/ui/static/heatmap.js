// The Attention heads tab's heatmaps on a canvas (payloads from figures/grid.py), run by gr.HTML
// as js_on_load(element, trigger, props, server, upload, watch). One script for both: "overview"
// (every head; a click opens a tile's head, the open head is outlined) and "head" (one head's
// [query, key] pattern with token labels; hover for the value, click a row to pick that query,
// drag to zoom, double-click to zoom out). Text goes in with textContent and fillText only.
const root = element.querySelector('.ae-hm');
const $ = (sel) => root.querySelector(sel);
const canvas = $('canvas'), tip = $('.ae-hm-tip'), msg = $('.ae-hm-msg');
const ranges = $('.ae-hm-ranges'), titleEl = $('.ae-hm-title'), subEl = $('.ae-hm-sub'), resetBtn = $('.ae-hm-reset'), pngBtn = $('.ae-hm-png');
let p = null, cells = null, lut = null, geo = null, view = null, drag = null, drawn = 0, pending = false, lastW = -1;

const decode = (q) => {
  const bin = atob(q.data || ''), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return q.dtype === 'f32' ? new Float32Array(bytes.buffer) : new Uint16Array(bytes.buffer);
};
const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const makeLut = (stops) => {  // 256 RGB entries, interpolated in RGB between the scale's stops (as Plotly)
  const out = new Uint8ClampedArray(256 * 3), s = stops.map(([t, c]) => [t, hex(c)]);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < s.length - 2 && t > s[k + 1][0]) k++;
    const [t0, c0] = s[k], [t1, c1] = s[k + 1], f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = Math.round(c0[ch] + f * (c1[ch] - c0[ch]));
  }
  return out;
};
const value = (i) => (p.dtype === 'f32' ? cells[i] : cells[i] * p.scale);
const fmt = (v, d) => (Number.isFinite(v) ? v.toFixed(d) : '–');
const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

// The page's language (Gradio sets <html lang> from its locale): titles, axes and hover in it.
const zh = () => (document.documentElement.lang || '').toLowerCase().startsWith('zh');
const T = {
  overview: () => (zh() ? ['所有注意力头 · 点击一格打开它', '行：层 · 列：注意力头 · 每格：查询 ↓，键 →', '注意力（块内最大值）']
    : [p.title, p.subtitle, p.colorbar]),
  head: () => {
    if (!zh()) return [p.title, p.subtitle, p.colorbar];
    const q = p.query, t = (p.tokens || [])[q];
    const title = `第 ${p.layer} 层，` + (p.head === null || p.head === undefined ? '各注意力头的平均' : `注意力头 ${p.head}`);
    const sub = '每个查询词元关注哪里' + (Number.isInteger(q) && t !== undefined ? ` · 已框出查询 ${q} '${t}'` : '');
    return [title, sub, `注意力 0 – ${fmt(p.zmax, 2)}`];
  },
  key: () => (zh() ? '键（被关注的词元）' : 'key (attended to)'),
  query: () => (zh() ? '查询（发出关注的词元）' : 'query (attending)'),
  tile: (h) => (zh() ? `第 ${h.layer} 层，注意力头 ${h.head} · 块内最大值 ${fmt(h.v, 3)}`
    : `layer ${h.layer}, head ${h.head} · block max ${fmt(h.v, 3)}`),
  cell: (h, t) => (zh() ? `查询 ${h.query} '${t[h.query]}' → 键 ${h.col} '${t[h.col]}'：${fmt(h.v, 4)}`
    : `query ${h.query} '${t[h.query]}' → key ${h.col} '${t[h.col]}': ${fmt(h.v, 4)}`),
  masked: (h, t) => (zh() ? `查询 ${h.query} '${t[h.query]}' 看不到键 ${h.col}（在它之后的词元）`
    : `query ${h.query} '${t[h.query]}' cannot see key ${h.col} (a later token)`),
  zoomOut: () => (zh() ? '还原缩放' : 'Zoom out'),
};

const load = () => {
  p = props.value && typeof props.value === 'object' ? props.value : null;
  cells = p && p.data ? decode(p) : null;
  lut = p && p.colorscale ? makeLut(p.colorscale) : null;
  view = p && p.kind === 'head' ? {r0: 0, r1: p.shape[0], c0: 0, c1: p.shape[1]} : null;
  schedule();
};

// --- drawing ---------------------------------------------------------------------------------
const style = () => {
  const cs = getComputedStyle(root);
  const size = parseFloat(cs.fontSize) || 14;
  const muted = cs.getPropertyValue('--body-text-color-subdued').trim() || cs.color;
  return {size, font: `${Math.round(size * 0.82)}px ${cs.fontFamily}`, small: Math.round(size * 0.82),
    color: cs.color, muted, paper: cs.getPropertyValue('--background-fill-primary').trim() || 'white'};
};
const image = (w, h, fill) => {  // an offscreen canvas of w × h cells, fill(data) writes RGBA
  const off = document.createElement('canvas');
  off.width = w; off.height = h;
  const c = off.getContext('2d'), img = c.createImageData(w, h);
  fill(img.data);
  c.putImageData(img, 0, 0);
  return off;
};
const paint = (data, at, v, zmax) => {
  if (!Number.isFinite(v)) return;  // masked: left transparent, the page shows through
  const k = Math.max(0, Math.min(255, Math.round((v / zmax) * 255))) * 3;
  data[at] = lut[k]; data[at + 1] = lut[k + 1]; data[at + 2] = lut[k + 2]; data[at + 3] = 255;
};
// The colour bar at x: a 12 px gradient, its two values beside it, its title turned along it.
const BAR = 12;
const barWidth = (c, s) => BAR + 4 + Math.ceil(c.measureText('0.00').width) + 6 + s.small + 6;
const colorbar = (c, x, y, h, s, label, zmax) => {
  const grad = c.createLinearGradient(0, y + h, 0, y);
  for (let i = 0; i <= 10; i++) { const k = Math.round(i * 25.5) * 3; grad.addColorStop(i / 10, `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`); }
  c.fillStyle = grad; c.fillRect(x, y, BAR, h);
  c.fillStyle = s.color; c.textAlign = 'left'; c.textBaseline = 'middle';
  c.fillText(fmt(zmax, 2), x + BAR + 4, y + s.small / 2); c.fillText('0', x + BAR + 4, y + h - s.small / 2);
  const along = x + BAR + 4 + Math.ceil(c.measureText('0.00').width) + 6 + s.small / 2;
  c.save(); c.translate(along, y + h / 2); c.rotate(-Math.PI / 2);
  c.textAlign = 'center'; c.fillStyle = s.muted; c.fillText(clip(label, Math.max(6, Math.floor(h / (s.small * 0.55)))), 0, 0);
  c.restore();
};
// On a narrow panel (a phone) the bar lies under the plot instead, and the cells get its width.
const NARROW = 520, HBAR = 10;
const hbarHeight = (s) => HBAR + 6 + s.small + 8;
const hbar = (c, x, y, w, s, label, zmax) => {
  const grad = c.createLinearGradient(x, 0, x + w, 0);
  for (let i = 0; i <= 10; i++) { const k = Math.round(i * 25.5) * 3; grad.addColorStop(i / 10, `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`); }
  c.fillStyle = grad; c.fillRect(x, y, w, HBAR);
  c.textBaseline = 'top'; c.fillStyle = s.color;
  c.textAlign = 'left'; c.fillText('0', x, y + HBAR + 4);
  c.textAlign = 'right'; c.fillText(fmt(zmax, 2), x + w, y + HBAR + 4);
  c.textAlign = 'center'; c.fillStyle = s.muted; c.fillText(clip(label, Math.max(6, Math.floor(w / (s.small * 0.6)) - 8)), x + w / 2, y + HBAR + 4);
};
const begin = (w, h) => {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const c = canvas.getContext('2d');
  c.setTransform(dpr, 0, 0, dpr, 0, 0);
  c.clearRect(0, 0, w, h);
  c.imageSmoothingEnabled = false;
  return c;
};

const drawOverview = (W, s, bar) => {
  const [L, H, tq, tk] = p.shape, first = p.first_layer || 0;
  const c0 = canvas.getContext('2d'); c0.font = s.font;
  const narrow = W < NARROW;
  const left = Math.ceil(c0.measureText('L' + (first + L - 1)).width) + 10, top = s.small + 8, right = narrow ? 8 : barWidth(c0, s) + 8;
  const gapOf = (S) => (S >= 12 ? 2 : 1);
  let S = Math.floor((W - left - right) / H) - 2;
  S = Math.max(4, Math.min(S, Math.floor(((L <= 12 ? 620 : 900) - top - 8) / L) - gapOf(S)));
  const gap = gapOf(S), pitch = S + gap, h = top + L * pitch + 8 + (narrow ? hbarHeight(s) : 0);
  const c = begin(W, h);
  c.font = s.font;
  const off = image(H * tk, L * tq, (data) => {
    const W2 = H * tk;
    for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) for (let i = 0; i < tq; i++) {
      const src = ((l * H + hd) * tq + i) * tk, row = (l * tq + i) * W2 + hd * tk;
      for (let j = 0; j < tk; j++) paint(data, (row + j) * 4, value(src + j), 1);
    }
  });
  for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
    c.drawImage(off, hd * tk, l * tq, tk, tq, left + hd * pitch, top + l * pitch, S, S);
  }
  c.fillStyle = s.color; c.textBaseline = 'middle';
  const every = Math.max(1, Math.ceil((s.small + 2) / pitch));
  c.textAlign = 'right';
  for (let l = 0; l < L; l += every) c.fillText('L' + (first + l), left - 6, top + l * pitch + S / 2);
  const everyH = Math.max(1, Math.ceil(c.measureText('H' + (H - 1)).width / pitch + 0.15));
  c.textAlign = 'center'; c.textBaseline = 'alphabetic';
  for (let hd = 0; hd < H; hd += everyH) c.fillText('H' + hd, left + hd * pitch + S / 2, top - 5);
  const sel = props.outline;
  if (Array.isArray(sel) && sel[0] - first >= 0 && sel[0] - first < L) {
    const l = sel[0] - first, whole = sel[1] === null || sel[1] === undefined;
    c.strokeStyle = p.highlight; c.lineWidth = 2.5;
    const x = left + (whole ? 0 : sel[1] * pitch) - 2, y = top + l * pitch - 2;
    c.strokeRect(x, y, (whole ? H * pitch - gap : S) + 4, S + 4);
  }
  if (narrow) hbar(c, left, top + L * pitch + 6, Math.min(H * pitch - gap, 320), s, bar, 1);
  else colorbar(c, W - right + 8, top, Math.min(L * pitch - gap, 320), s, bar, 1);
  geo = {left, top, pitch, S, L, H, tq, tk, first};
  return h;
};

const drawHead = (W, s, bar) => {
  const [R, C] = p.shape, off0 = p.row_offset || 0, tokens = p.tokens || [];
  const {r0, r1, c0, c1} = view, nr = r1 - r0, nc = c1 - c0;
  const cx = canvas.getContext('2d'); cx.font = s.font;
  const label = (k) => clip(tokens[k] === undefined ? String(k) : tokens[k], 14);
  let longest = 0;
  for (let k = r0 + off0; k < r1 + off0; k++) longest = Math.max(longest, cx.measureText(label(k)).width);
  let longestX = 0;
  for (let k = c0; k < c1; k++) longestX = Math.max(longestX, cx.measureText(label(k)).width);
  const narrow = W < NARROW;
  const left = Math.ceil(longest) + s.small * 1.6 + 10, right = narrow ? 8 : barWidth(cx, s) + 8;
  const bottom = Math.ceil(Math.min(longestX, 110)) + s.small * 1.6 + 12, top = 6;
  const pw = Math.max(60, W - left - right), cw = pw / nc;
  const ph = Math.max(160, Math.min(560, nr * cw)), ch = ph / nr;
  const h = top + ph + bottom + (narrow ? hbarHeight(s) : 0);
  const c = begin(W, h);
  c.font = s.font;
  const img = image(nc, nr, (data) => {
    for (let i = 0; i < nr; i++) for (let j = 0; j < nc; j++) paint(data, (i * nc + j) * 4, value((r0 + i) * C + c0 + j), p.zmax);
  });
  c.drawImage(img, left, top, pw, ph);
  c.fillStyle = s.color;
  const ey = Math.max(1, Math.ceil((s.small + 2) / ch)), ex = Math.max(1, Math.ceil((s.small + 2) / cw));
  c.textAlign = 'right'; c.textBaseline = 'middle';
  for (let i = 0; i < nr; i += ey) c.fillText(label(r0 + i + off0), left - 5, top + (i + 0.5) * ch);
  for (let j = 0; j < nc; j += ex) {
    c.save(); c.translate(left + (j + 0.5) * cw, top + ph + 5); c.rotate(-Math.PI / 2);
    c.fillText(label(c0 + j), 0, 0); c.restore();
  }
  c.fillStyle = s.muted; c.textAlign = 'center'; c.textBaseline = 'alphabetic';
  c.fillText(T.key(), left + pw / 2, top + ph + bottom - 4);
  c.save(); c.translate(s.small + 2, top + ph / 2); c.rotate(-Math.PI / 2); c.fillText(T.query(), 0, 0); c.restore();
  const q = p.query;
  if (Number.isInteger(q) && q - off0 >= r0 && q - off0 < r1) {
    const i = q - off0 - r0, last = Math.min(q, c1 - 1) - c0;
    if (last >= 0) {
      c.strokeStyle = p.highlight; c.lineWidth = 3;
      c.strokeRect(left, top + i * ch, (last + 1) * cw, ch);
    }
  }
  if (narrow) hbar(c, left, top + ph + bottom + 4, Math.min(pw, 320), s, bar, p.zmax);
  else colorbar(c, W - right + 8, top, Math.min(ph, 320), s, bar, p.zmax);
  geo = {left, top, cw, ch, pw, ph, off0};
  return h;
};

const draw = () => {
  pending = false;
  const W = Math.floor(root.clientWidth);
  const message = !p || p.kind === 'message' || !cells;
  msg.hidden = !message; canvas.hidden = message;
  const [title, subtitle, bar] = message ? ['', '', ''] : T[p.kind === 'overview' ? 'overview' : 'head']();
  titleEl.textContent = title || ''; subEl.textContent = subtitle || ''; resetBtn.textContent = T.zoomOut();
  if (message) {
    msg.textContent = p && p.text ? p.text : ''; geo = null;
    root.dataset.kind = 'message'; root.dataset.meta = ''; root.dataset.drawn = String(++drawn);
    return;
  }
  lastW = W;
  if (!W) return;  // a hidden tab: drawn when it shows (the ResizeObserver)
  const s = style();
  const h = p.kind === 'overview' ? drawOverview(W, s, bar) : drawHead(W, s, bar);
  canvas.setAttribute('aria-label', `${title}. ${subtitle || ''}`);
  drawRanges();
  resetBtn.hidden = !(view && (view.r0 || view.c0 || view.r1 < p.shape[0] || view.c1 < p.shape[1]));
  pngBtn.hidden = false;
  root.dataset.kind = p.kind; root.dataset.meta = p.meta || ''; root.dataset.height = String(h);
  // What was drawn, for tests: the outlined head, the text colour and size (Dark, Lecture mode).
  root.dataset.outline = Array.isArray(props.outline) ? props.outline.join(',') : '';
  root.dataset.ink = s.color; root.dataset.font = String(s.small);
  root.dataset.drawn = String(++drawn);
};
// A deep model's overview: buttons for all layers and for each range of them (shown alone).
let rangesFor = null;
const drawRanges = () => {
  const list = p && p.kind === 'overview' && p.ranges && p.ranges.length ? p.ranges : [];
  const key = JSON.stringify([list, p && p.first_layer, p && p.shape && p.shape[0], zh()]);
  if (key === rangesFor) return;
  rangesFor = key;
  const first = p ? p.first_layer || 0 : 0, shown = p && p.shape ? p.shape[0] : 0;
  const buttons = list.length ? [[0, p.n_layer_all], ...list] : [];
  ranges.replaceChildren(...buttons.map(([lo, hi]) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = lo === 0 && hi === p.n_layer_all ? (zh() ? '全部层' : 'All layers') : `L${lo}–${hi - 1}`;
    b.setAttribute('aria-pressed', String(lo === first && hi === first + shown));
    b.addEventListener('click', () => trigger('click', {layers: [lo, hi]}));
    return b;
  }));
};
const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };

// --- pointer -----------------------------------------------------------------------------------
const at = (ev) => { const r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; };
const hit = (x, y) => {  // what is under a point: {layer, head, cell} or {row, col}, or null
  if (!geo || !p) return null;
  if (p.kind === 'overview') {
    const {left, top, pitch, S, L, H, tq, tk, first} = geo;
    const hd = Math.floor((x - left) / pitch), l = Math.floor((y - top) / pitch);
    const ix = x - left - hd * pitch, iy = y - top - l * pitch;
    if (hd < 0 || hd >= H || l < 0 || l >= L || ix >= S || iy >= S) return null;
    const i = Math.min(tq - 1, Math.floor((iy / S) * tq)), j = Math.min(tk - 1, Math.floor((ix / S) * tk));
    return {layer: first + l, head: hd, v: value(((l * H + hd) * tq + i) * tk + j)};
  }
  const {left, top, cw, ch, pw, ph, off0} = geo;
  if (x < left || y < top || x >= left + pw || y >= top + ph) return null;
  const row = view.r0 + Math.floor((y - top) / ch), col = view.c0 + Math.floor((x - left) / cw);
  return {row, col, query: row + off0, v: value(row * p.shape[1] + col)};
};
const showTip = (x, y, text) => {
  tip.textContent = text; tip.hidden = false;
  const w = tip.offsetWidth, room = root.clientWidth;
  tip.style.left = Math.max(0, Math.min(room - w - 4, x + canvas.offsetLeft + 14)) + 'px';
  tip.style.top = (y + canvas.offsetTop + 16) + 'px';
};
const describe = (h) => {
  if (p.kind === 'overview') return T.tile(h);
  const t = p.tokens || [];
  return Number.isFinite(h.v) ? T.cell(h, t) : T.masked(h, t);
};
canvas.addEventListener('mousemove', (ev) => {
  const [x, y] = at(ev);
  if (drag) { drag.x1 = x; drag.y1 = y; drawBand(); return; }
  const h = hit(x, y);
  canvas.style.cursor = h ? (p.kind === 'overview' ? 'pointer' : 'crosshair') : 'default';
  if (h) showTip(x, y, describe(h)); else tip.hidden = true;
});
canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
const band = $('.ae-hm-band');
const drawBand = () => {
  const x = Math.min(drag.x0, drag.x1), y = Math.min(drag.y0, drag.y1);
  Object.assign(band.style, {left: x + canvas.offsetLeft + 'px', top: y + canvas.offsetTop + 'px',
    width: Math.abs(drag.x1 - drag.x0) + 'px', height: Math.abs(drag.y1 - drag.y0) + 'px'});
  band.hidden = false;
};
canvas.addEventListener('mousedown', (ev) => {
  if (ev.button !== 0 || !p || p.kind !== 'head') return;
  const [x, y] = at(ev);
  if (hit(x, y)) drag = {x0: x, y0: y, x1: x, y1: y};
});
window.addEventListener('mouseup', (ev) => {
  if (!drag) return;
  const d = drag; drag = null; band.hidden = true;
  if (Math.abs(d.x1 - d.x0) < 6 && Math.abs(d.y1 - d.y0) < 6) return;  // a click, handled below
  const a = hit(Math.min(d.x0, d.x1), Math.min(d.y0, d.y1)) || hit(d.x0, d.y0);
  const b = hit(Math.max(d.x0, d.x1) - 1, Math.max(d.y0, d.y1) - 1) || hit(d.x1, d.y1);
  if (!a || !b) return;
  view = {r0: Math.min(a.row, b.row), r1: Math.max(a.row, b.row) + 1, c0: Math.min(a.col, b.col), c1: Math.max(a.col, b.col) + 1};
  canvas.__aeDragged = true;
  schedule();
});
canvas.addEventListener('click', (ev) => {
  if (canvas.__aeDragged) { canvas.__aeDragged = false; return; }
  const h = hit(...at(ev));
  if (!h) return;
  if (p.kind === 'overview') trigger('click', {layer: h.layer, head: h.head});
  else trigger('click', {query: h.query});
});
const zoomOut = () => { if (p && p.kind === 'head') { view = {r0: 0, r1: p.shape[0], c0: 0, c1: p.shape[1]}; schedule(); } };
canvas.addEventListener('dblclick', zoomOut);
resetBtn.addEventListener('click', zoomOut);
pngBtn.addEventListener('click', () => {
  canvas.toBlob((blob) => {
    if (!blob) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = (p && p.meta ? p.meta : 'attention') + '.png';
    a.click(); setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
});

// Where a tile (layer, head) or a cell (query, key) is on screen, for tests and benches.
root.aePoint = (a, b) => {
  if (!geo || !p) return null;
  const r = canvas.getBoundingClientRect();
  if (p.kind === 'overview') {
    const {left, top, pitch, S, first} = geo;
    return [r.left + left + b * pitch + S / 2, r.top + top + (a - first) * pitch + S / 2];
  }
  const {left, top, cw, ch, off0} = geo;
  return [r.left + left + (b - view.c0 + 0.5) * cw, r.top + top + (a - off0 - view.r0 + 0.5) * ch];
};

// --- redraws: a new payload or selection, a resize, Dark or Lecture mode ----------------------
watch('value', load);
// The outline prop, named without quotes: Gradio reads a quoted name in this script as a custom event.
watch(Object.keys(props).filter((k) => !['value', 'label', 'visible'].includes(k)), schedule);
new ResizeObserver(() => { if (Math.floor(root.clientWidth) !== lastW) schedule(); }).observe(root);
const modes = new MutationObserver(schedule);
modes.observe(document.body, {attributes: true, attributeFilter: ['class']});
modes.observe(document.documentElement, {attributes: true, attributeFilter: ['class', 'lang']});
load();
