// A Run, drawn in place as it streams. This hidden gr.HTML's value is a frame (generate_run.frame):
// this Run's tokens so far, the newest step's distribution and attention figures, the timeline's
// points. Only what changed is drawn: the new tokens appended to the text, the two figures
// updated in their Plotly divs (Plotly.react, no new plot), the new points appended to the
// timeline (Plotly.extendTraces). Stop stops the drawing at once; the Run's last reply is the
// full view, which Gradio draws as for Step.
const run = window.aeRun = window.aeRun || {id: 0, stopped: true};
run.start = () => {
  Object.assign(run, {id: run.id + 1, stopped: false, drawn: 0, frames: 0, latest: null, plotted: {}, log: [], started: performance.now()});
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
};
const plotIn = (sel) => document.querySelector(sel + ' .js-plotly-plot');
const react = (sel, fig) => {
  const gd = plotIn(sel);
  if (!gd || !fig || !window.Plotly) return;
  const layout = Object.assign({}, fig.layout, {autosize: true});
  layout.margin = Object.assign({}, layout.margin || {}, {autoexpand: true});
  window.Plotly.react(gd, fig.data, layout, {responsive: true});
};
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
    span.title = `step ${step}: ${forced ? 'forced by you' : 'chosen by sampling'}`;
    span.textContent = piece;
    box.append(span);
  });
  run.drawn = f.tokens.length;
};
const plain = (v) => (Array.isArray(v) ? v : Array.from(v || []));
const drawTimeline = (f) => {
  const gd = plotIn('#ae-timeline');
  const t = f.timeline;
  if (!gd || !t || !window.Plotly) return;
  const isTimeline = gd.layout && gd.layout.meta === 'generation-timeline' && gd.data && gd.data.length === 2;
  if (!isTimeline) {
    if (f.timeline_full) react('#ae-timeline', f.timeline_full);
    return;
  }
  const have = (gd._fullData && gd._fullData[0] ? gd._fullData[0].x.length : plain(gd.data[0].x).length);
  const from = have - (t.x.length ? t.x[0] : have);
  if (from < 0 || from >= t.x.length) return;
  for (const i of [0, 1]) {  // typed arrays from the figure's JSON: plain ones to extend
    for (const key of ['x', 'y', 'hovertext']) gd.data[i][key] = plain(gd.data[i][key]);
  }
  const x = t.x.slice(from), text = t.text.slice(from);
  Object.assign(gd.layout.xaxis, {tickvals: t.ticks.tickvals, ticktext: t.ticks.ticktext});  // read by the redraw below
  window.Plotly.extendTraces(gd, {x: [x, x], y: [t.p.slice(from), t.h.slice(from)], hovertext: [text, text]}, [0, 1]);
};
const line = () => element.querySelector('.ae-run-line');
// The plots are drawn one per task, each from the newest frame, so that a click (Stop) is
// handled between them and the page never works through frames it has already been overtaken by.
const PARTS = {
  dist: (f) => react('#ae-dist', f.dist),
  attn: (f) => react('#ae-gen-attn', f.attn),
  timeline: drawTimeline,
};
const ORDER = Object.keys(PARTS);
let timer = null, turn = 0;
const behind = (name) => run.latest && (run.plotted[name] || 0) < run.latest.tokens.length;
const tick = () => {
  timer = null;
  if (run.stopped || !run.latest) return;
  for (let k = 0; k < ORDER.length; k++) {
    const name = ORDER[(turn + k) % ORDER.length];
    if (!behind(name)) continue;
    const t0 = performance.now();
    PARTS[name](run.latest);
    run.plotted[name] = run.latest.tokens.length;
    const took = performance.now() - t0;
    run.log.push([name, Math.round(t0), Math.round(took)]);  // read by tests and bench
    if (run.log.length > 500) run.log.shift();
    turn = (turn + k + 1) % ORDER.length;
    // As long idle as the draw took: the page stays free at least half the time for the
    // frames arriving and for a click, however slow the machine draws.
    if (ORDER.some(behind)) timer = setTimeout(tick, took);
    return;
  }
};
const apply = (raw) => {
  let f;
  try { f = JSON.parse(raw); } catch (err) { return; }
  if (!f || f.run !== run.id) return;
  if (line()) line().textContent = run.stopped && !f.done ? 'Stopping…' : f.line;
  if (run.stopped || f.done) return;
  drawText(f);  // appending a few spans: cheap, at once
  run.latest = f;
  run.frames += 1;
  run.lastDrawn = performance.now();
  document.documentElement.dataset.aeRunDrawn = String(f.base + f.tokens.length);
  if (!timer) timer = setTimeout(tick, 0);
};
watch('value', () => { if (props.value) apply(props.value); });
