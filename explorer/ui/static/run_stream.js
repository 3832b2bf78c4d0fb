// A Run, drawn in place as it streams. This hidden gr.HTML's value is a frame (generate_run.frame):
// this Run's tokens so far, and the newest step's distribution, attention row and the timeline as
// data. The new tokens are appended to the text; the three panels are drawn on canvases laid over
// their plots (a few ms a frame: a Plotly redraw cost 90–210 ms, most of it forced layout), at
// most once per animation frame. Stop stops the drawing at once. The Run's last frame carries the
// full figures of the step it ended on: each is drawn into its plot (Plotly.react), one per task,
// and its canvas removed, so that hover, clicks and downloads work on the real figure again.
const run = window.aeRun = window.aeRun || {id: 0, stopped: true};
const PANELS = {dist: '#ae-dist', attn: '#ae-gen-attn', timeline: '#ae-timeline'};
const COLORS = ['#0072B2', '#E69F00'];  // figures/base.py OKABE_ITO: the plots' own colours
const HIGHLIGHT = '#D55E00', INK = '#1f2937', MUTED = '#4b5563', GRID = '#e5e7eb';
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "WenQuanYi Micro Hei", sans-serif';
// The page's language (Gradio sets <html lang> from its locale): the canvas's own words in it, as
// the figures' are (the frames' titles and lines come in the session's language from the server).
const ZH = {
  'model': '模型', 'after sampling settings': '经采样设置后', '◀ chosen': '◀ 选中',
  'Generation: confidence in each chosen token': '生成：每个选中词元的置信度',
  'p(chosen token)': 'p(选中的词元)', 'entropy (bits)': '熵（比特）', 'Stopping…': '正在停止…',
  'forced by you': '由你强制指定', 'chosen by sampling': '由采样选出',
};
const say = (text) => ((document.documentElement.lang || '').toLowerCase().startsWith('zh') && ZH[text]) || text;
const stepTip = (step, forced) => {
  const how = say(forced ? 'forced by you' : 'chosen by sampling');
  return say('model') === 'model' ? `step ${step}: ${how}` : `第 ${step} 步：${how}`;
};
run.start = () => {
  Object.assign(run, {id: run.id + 1, stopped: false, drawn: 0, frames: 0, latest: null, gotDone: false,
    pending: false, log: [], started: performance.now(), sizes: measure()});
  document.documentElement.dataset.aeRunning = '1';
  return 'page:' + run.id;
};
run.stop = () => {
  run.stopped = true;
  run.stopAt = performance.now();
  run.drawnAtStop = run.drawn ? (run.latest ? run.latest.base : 0) + run.drawn : 0;  // for tests and bench
  return 'page:' + run.id;
};
run.end = () => {
  run.stopped = true;
  delete document.documentElement.dataset.aeRunning;
  if (!run.gotDone) for (const name of Object.keys(PANELS)) uncover(name);  // an error: Gradio's plots
};
const logDraw = (name, t0) => {
  const took = performance.now() - t0;
  run.log.push([name, Math.round(t0), Math.round(took)]);  // read by tests and bench
  if (run.log.length > 500) run.log.shift();
  return took;
};

// --- the canvases --------------------------------------------------------------------------------
// The panels' sizes, kept by a ResizeObserver (it reports after layout, so reading them never
// forces one): read at the Run's click, or in its first frame, the same read forced a layout of
// the page, 50–100 ms of the Run's longest task.
const sizes = {}, names = new WeakMap();
const observer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const box = e.borderBoxSize && e.borderBoxSize[0];
    sizes[names.get(e.target)] = box ? [box.inlineSize, box.blockSize] : [e.target.offsetWidth, e.target.offsetHeight];
  }
});
const watchPanels = (tries) => {  // the tab's plots mount with it, maybe a moment after this script
  let missing = false;
  for (const [name, sel] of Object.entries(PANELS)) {
    const block = document.querySelector(sel);
    if (block && !names.has(block)) { names.set(block, name); observer.observe(block); }
    missing = missing || !block;
  }
  if (missing && tries > 0) setTimeout(() => watchPanels(tries - 1), 250);
};
watchPanels(40);
function measure() {
  watchPanels(0);  // a panel Gradio mounted anew since
  return Object.assign({}, sizes);
}
const cover = (name) => {
  const block = document.querySelector(PANELS[name]);
  if (!block) return null;
  let canvas = block.querySelector(':scope > canvas.ae-live');
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.className = 'ae-live';
    canvas.setAttribute('aria-hidden', 'true');
    block.append(canvas);
  }
  if (!canvas.aeSize) {
    const [w, h] = (run.sizes || {})[name] || [block.clientWidth, block.clientHeight];
    const r = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(w * r));
    canvas.height = Math.max(1, Math.round(h * r));
    canvas.aeSize = [w, h, r, document.body.classList.contains('ae-lecture') ? 17 : 13];
  }
  return canvas;
};
const uncover = (name) => {
  const block = document.querySelector(PANELS[name]);
  const canvas = block && block.querySelector(':scope > canvas.ae-live');
  if (canvas) canvas.remove();
};
const begin = (canvas) => {
  const [w, h, r, fs] = canvas.aeSize, g = canvas.getContext('2d');
  g.setTransform(r, 0, 0, r, 0, 0);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, w, h);
  g.textBaseline = 'middle';
  return {g, w, h, fs};
};
const font = (g, px, weight) => { g.font = `${weight || 400} ${px}px ${FONT}`; };
const fit = (g, text, width) => {  // cut to `width` px with an ellipsis
  if (g.measureText(text).width <= width) return text;
  let s = text;
  while (s.length > 1 && g.measureText(s + '…').width > width) s = s.slice(0, -1);
  return s + '…';
};
const heading = (c, title, subtitle) => {
  const {g, w, fs} = c;
  font(g, fs + 4, 600);
  g.fillStyle = INK;
  g.textAlign = 'left';
  g.fillText(fit(g, title, w - 24), 12, 18 + fs / 2);
  if (!subtitle) return 30 + fs;
  font(g, fs, 400);
  g.fillStyle = MUTED;
  g.fillText(fit(g, subtitle, w - 24), 12, 26 + fs * 1.6);
  return 36 + fs * 2;
};
const niceStep = (max, count) => {
  const raw = max / Math.max(1, count), p = 10 ** Math.floor(Math.log10(raw || 1)), m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
};
const percent = (v, step) => (v * 100).toFixed(step >= 0.01 ? 0 : step >= 0.001 ? 1 : 2) + '%';
const legend = (c, y, names) => {
  const {g, w, fs} = c;
  font(g, fs, 400);
  g.textAlign = 'left';
  let x = w - 12;
  for (let k = names.length - 1; k >= 0; k--) {
    x -= g.measureText(names[k]).width;
    g.fillStyle = MUTED;
    g.fillText(names[k], x, y);
    x -= fs + 6;
    g.fillStyle = COLORS[k];
    g.fillRect(x, y - fs / 2, fs, fs);
    x -= 14;
  }
};
const xLabels = (c, ticks, xOf, y, width) => {  // token ticks under an axis, cut to their room
  const {g, fs} = c;
  font(g, fs - 1, 400);
  g.fillStyle = MUTED;
  g.textAlign = 'center';
  const room = Math.max(16, width / Math.max(1, ticks.length) - 4);
  for (const [i, text] of ticks) g.fillText(fit(g, text, room), xOf(i), y);
};

const DRAW = {
  dist: (canvas, d) => {  // figures/generation.py distribution_figure, as bars on a canvas
    const c = begin(canvas), {g, w, h, fs} = c;
    const top = heading(c, d.title, d.note) + fs;
    legend(c, top - fs, [say('model'), say('after sampling settings')]);
    const rows = d.rows, n = Math.max(1, rows.length);
    const bottom = h - fs - 16, rowH = Math.min(4 * fs, (bottom - top) / n);
    font(g, fs, 400);
    const labelW = Math.min(w * 0.3, Math.max(40, ...rows.map(([t]) => g.measureText(t).width)) + 12);
    const x0 = 12 + labelW, x1 = w - 110;
    const pmax = Math.max(1e-9, ...rows.flatMap(([, a, b]) => [a || 0, b || 0])) * 1.05;
    const step = niceStep(pmax, 4), xOf = (p) => x0 + (x1 - x0) * p / pmax;
    font(g, fs - 1, 400);
    g.textAlign = 'center';
    for (let v = 0; v <= pmax; v += step) {
      g.fillStyle = GRID;
      g.fillRect(xOf(v), top - 4, 1, rows.length * rowH + 4);
      g.fillStyle = MUTED;
      g.fillText(percent(v, step), xOf(v), bottom + fs / 2 + 6);
    }
    rows.forEach(([token, raw, warped, chosen], i) => {
      const y = top + i * rowH;
      font(g, fs, chosen ? 700 : 400);
      g.textAlign = 'right';
      g.fillStyle = chosen ? HIGHLIGHT : INK;
      g.fillText(fit(g, token, labelW - 12), x0 - 8, y + rowH / 2);
      [raw, warped].forEach((p, k) => {
        if (p === null || p === undefined) return;
        const bar = [x0, y + rowH * (0.1 + 0.42 * k), Math.max(1, xOf(p) - x0), rowH * 0.38];
        g.fillStyle = COLORS[k];
        g.fillRect(...bar);
        if (chosen) { g.strokeStyle = '#000'; g.lineWidth = 2; g.strokeRect(...bar); }
      });
      if (chosen) {
        font(g, fs, 600);
        g.textAlign = 'left';
        g.fillStyle = HIGHLIGHT;
        g.fillText(say('◀ chosen'), xOf(Math.max(raw || 0, warped || 0)) + 6, y + rowH / 2);
      }
    });
  },
  attn: (canvas, a) => {  // figures/heads.py attention_row_figure
    const c = begin(canvas), {g, w, h, fs} = c;
    const top = heading(c, a.title, a.subtitle) + 8, x0 = 56, x1 = w - 16, bottom = h - 2 * fs - 12;
    const values = a.values, n = Math.max(1, values.length);
    const vmax = Math.max(1e-9, ...values) * 1.08, yOf = (v) => bottom - (bottom - top) * v / vmax;
    const step = niceStep(vmax, 4), slot = (x1 - x0) / n, xOf = (i) => x0 + slot * (i + 0.5);
    font(g, fs - 1, 400);
    g.textAlign = 'right';
    for (let v = 0; v <= vmax; v += step) {
      g.fillStyle = GRID;
      g.fillRect(x0, yOf(v), x1 - x0, 1);
      g.fillStyle = MUTED;
      g.fillText(v.toFixed(step >= 0.1 ? 1 : 2), x0 - 6, yOf(v));
    }
    g.fillStyle = COLORS[0];
    values.forEach((v, i) => g.fillRect(x0 + slot * i + slot * 0.1, yOf(v), Math.max(1, slot * 0.8), bottom - yOf(v)));
    xLabels(c, a.ticks, xOf, bottom + fs, x1 - x0);
  },
  timeline: (canvas, t) => {  // figures/generation.py timeline_figure
    const c = begin(canvas), {g, w, h, fs} = c;
    const top = heading(c, say('Generation: confidence in each chosen token')) + fs;
    legend(c, top - fs, [say('p(chosen token)'), say('entropy (bits)')]);
    const x0 = 56, x1 = w - 56, bottom = h - 2 * fs - 12, n = t.p.length;
    const hmax = Math.max(1e-9, ...t.h) * 1.05, hstep = niceStep(hmax, 4);
    const xOf = (i) => x0 + (x1 - x0) * (n > 1 ? i / (n - 1) : 0.5);
    const yOf = (v, max) => bottom - (bottom - top) * v / max;
    font(g, fs - 1, 400);
    for (let v = 0; v <= 1.0001; v += 0.25) {
      g.fillStyle = GRID;
      g.fillRect(x0, yOf(v, 1.05), x1 - x0, 1);
      g.fillStyle = MUTED;
      g.textAlign = 'right';
      g.fillText(percent(v, 0.25), x0 - 6, yOf(v, 1.05));
    }
    g.textAlign = 'left';
    for (let v = 0; v <= hmax; v += hstep) g.fillText(v.toFixed(hstep >= 1 ? 0 : 1), x1 + 6, yOf(v, hmax));
    const line = (values, max, k, dash) => {
      g.strokeStyle = g.fillStyle = COLORS[k];
      g.lineWidth = 3;
      g.setLineDash(dash);
      g.beginPath();
      values.forEach((v, i) => (i ? g.lineTo : g.moveTo).call(g, xOf(i), yOf(v, max)));
      g.stroke();
      g.setLineDash([]);
      const r = n > 60 ? 1.5 : 4;
      if (n <= 200) values.forEach((v, i) => g.fillRect(xOf(i) - r, yOf(v, max) - r, 2 * r, 2 * r));
    };
    line(t.p, 1.05, 0, []);
    line(t.h, hmax, 1, [8, 5]);
    xLabels(c, t.ticks, xOf, bottom + fs, x1 - x0);
  },
};

// --- the text ------------------------------------------------------------------------------------
const drawText = (f) => {
  const holder = document.querySelector('#ae-gen-text');
  if (!holder) return;
  let box = holder.querySelector('.ae-text');
  if (run.drawn === 0 && f.prompt !== null && f.prompt !== undefined) {
    const body = holder.querySelector('.prose') || holder.firstElementChild || holder;
    body.replaceChildren();
    box = document.createElement('div');
    box.className = 'ae-text';
    const prompt = document.createElement('span');
    prompt.className = 'ae-prompt';
    prompt.textContent = f.prompt;
    box.append(prompt);
    body.append(box);
  }
  if (!box) return;
  const fresh = f.tokens.slice(run.drawn);
  if (!fresh.length) return;
  for (const old of box.querySelectorAll('.ae-new')) old.classList.remove('ae-new');
  fresh.forEach(([piece, forced], k) => {
    const span = document.createElement('span');
    const step = f.base + run.drawn + k + 1;
    span.className = 'ae-gen' + (k === fresh.length - 1 ? ' ae-new' : '') + (forced ? ' ae-forced' : '');
    span.title = stepTip(step, forced);
    span.textContent = piece;
    box.append(span);
  });
  run.drawn = f.tokens.length;
};

// --- the panels, at most once per animation frame, from the newest frame ---------------------------
const paint = () => {
  run.pending = false;
  const f = run.latest;
  if (run.stopped || run.gotDone || !f) return;  // after the last frame, a late paint would cover again
  for (const name of Object.keys(PANELS)) {
    const t0 = performance.now(), canvas = cover(name);
    if (canvas && f[name]) DRAW[name](canvas, f[name]);
    logDraw(name, t0);
  }
};
// The Run's end: the real figures into their plots, one per task, each uncovered once drawn.
const plotIn = (sel) => document.querySelector(sel + ' .js-plotly-plot');
const react = async (sel, fig) => {  // as Gradio's Plot draws a new value: react, then resize
  const gd = plotIn(sel), P = window.Plotly;
  if (!gd || !fig || !P) return;
  const layout = Object.assign({}, fig.layout, {autosize: true});
  layout.margin = Object.assign({}, layout.margin || {}, {autoexpand: true});
  await P.react(gd, fig.data, layout, {responsive: true});
  await P.Plots.resize(gd);
};
const finish = (figures) => {
  const queue = Object.keys(PANELS).filter((name) => figures[name]);
  const next = async () => {
    const name = queue.shift();
    if (!name) return;
    const t0 = performance.now();
    try { await react(PANELS[name], figures[name]); } catch (err) { /* the plot as it was */ }
    uncover(name);  // only once the figure is drawn and sized: clicks then land where they look
    const took = logDraw(name, t0);
    if (queue.length) setTimeout(next, Math.max(16, took));  // the page free between the plots
  };
  setTimeout(next, 0);
};
const line = () => element.querySelector('.ae-run-line');
const apply = (raw) => {
  let f;
  try { f = JSON.parse(raw); } catch (err) { return; }
  if (!f || f.run !== run.id) return;
  if (line()) line().textContent = run.stopped && !f.done ? say('Stopping…') : f.line;
  if (f.done) {
    run.gotDone = true;
    finish(f.figures || {});
    return;
  }
  if (run.stopped) return;
  drawText(f);  // appending a few spans: cheap, at once
  run.latest = f;
  run.frames += 1;
  run.lastDrawn = performance.now();
  if (run.frames === 1) run.firstDrawn = run.lastDrawn;  // bench/run.py: the streaming window
  document.documentElement.dataset.aeRunDrawn = String(f.base + f.tokens.length);
  if (!run.pending) {
    run.pending = true;
    requestAnimationFrame(paint);
  }
};
watch('value', () => { if (props.value) apply(props.value); });
