(() => {
  if (window.__aeInstalled) return;
  window.__aeInstalled = true;
  const LECTURE_SCALE = 1.4;
  const isLecture = () => document.body && document.body.classList.contains('ae-lecture');

  // --- Plotly: PNG and SVG downloads named by layout.meta, larger fonts in lecture mode.
  // The buttons read the name when clicked, so the config stays the same object for every
  // figure: Plotly.react then updates a plot in place instead of drawing it anew.
  const fileName = (gd) => String((gd.layout && gd.layout.meta) || 'attention-explorer').replace(/[^A-Za-z0-9._-]+/g, '-');
  const download = (format, title, icon) => ({
    name: 'ae-download-' + format,
    title,
    icon,
    click: (gd) => window.Plotly.downloadImage(gd, {format, filename: fileName(gd), scale: format === 'png' ? 2 : 1,
      width: gd._fullLayout.width, height: gd._fullLayout.height}),
  });
  const SVG_ICON = {width: 1000, height: 1000,
    path: 'M450 80h100v480l150-150 70 70-270 270-270-270 70-70 150 150zM120 800h760v120H120z'};
  let extraConfig = null;
  const configFor = (P) => extraConfig || (extraConfig = {
    displaylogo: false,
    modeBarButtonsToRemove: ['toImage'],
    modeBarButtonsToAdd: [download('png', 'Download plot as PNG', P.Icons.camera), download('svg', 'Download plot as SVG', SVG_ICON)],
  });
  // The title sits below a band for the mode bar (figures/base.py MODEBAR_BAND): lecture mode
  // scales the fonts and the room above the plot, not the band.
  const BAND = 30;
  const baseFonts = (layout) => ({
    font: (layout.font && layout.font.size) || 12,
    title: (layout.title && layout.title.font && layout.title.font.size) || 17,
    subtitle: (layout.title && layout.title.subtitle && layout.title.subtitle.font && layout.title.subtitle.font.size) || 0,
    top: (layout.margin && layout.margin.t) || 0,
  });
  const scaledUpdate = (base) => {
    const k = isLecture() ? LECTURE_SCALE : 1;
    const update = {'font.size': Math.round(base.font * k), 'title.font.size': Math.round(base.title * k)};
    if (base.subtitle) update['title.subtitle.font.size'] = Math.round(base.subtitle * k);
    if (base.top > BAND) update['margin.t'] = Math.round(BAND + (base.top - BAND) * k);
    return update;
  };
  const scaled = (layout, base) => {
    const update = scaledUpdate(base);
    const out = Object.assign({}, layout);
    out.font = Object.assign({}, layout.font || {}, {size: update['font.size']});
    if (layout.title && typeof layout.title === 'object') {
      const title = Object.assign({}, layout.title, {font: Object.assign({}, layout.title.font || {}, {size: update['title.font.size']})});
      if (base.subtitle) title.subtitle = Object.assign({}, layout.title.subtitle, {font: Object.assign({}, layout.title.subtitle.font || {}, {size: update['title.subtitle.font.size']})});
      out.title = title;
    }
    if (update['margin.t']) out.margin = Object.assign({}, layout.margin, {t: update['margin.t']});
    return out;
  };
  // A title (or subtitle) wider than its plot gets a smaller font: never cut at the plot's edge.
  const fitTitle = (gd) => {
    const L = gd._fullLayout;
    if (!L || !L.title || !window.Plotly) return;
    const room = L.width - 8;
    const update = {};
    for (const [sel, key, size] of [['.gtitle', 'title.font.size', L.title.font && L.title.font.size],
      ['.gtitle-subtitle', 'title.subtitle.font.size', L.title.subtitle && L.title.subtitle.font && L.title.subtitle.font.size]]) {
      const el = gd.querySelector('.g-gtitle ' + sel);
      if (!el || !size || typeof el.getBBox !== 'function') continue;
      const b = el.getBBox();
      const next = Math.max(9, Math.floor(size * (room - b.x) / b.width));
      if (b.width > 0 && b.x + b.width > room && next < size) update[key] = next;
    }
    // A legend laid above the plot that wraps onto more lines than planned: more room above the plot.
    const legend = gd.querySelector('.legend'), heading = gd.querySelector('.g-gtitle');
    if (legend && heading && !Object.keys(update).length) {
      const l = legend.getBoundingClientRect(), h = heading.getBoundingClientRect();
      const overlap = h.bottom + 4 - l.top;
      if (h.width && l.width && overlap > 0 && l.left < h.right && h.left < l.right && l.top < h.bottom) {
        update['margin.t'] = Math.ceil(L.margin.t + overlap);
      }
    }
    if (Object.keys(update).length) window.Plotly.relayout(gd, update);
  };
  const watch = (gd) => {
    if (gd.__aeWatched || typeof gd.on !== 'function') return;
    gd.__aeWatched = true;
    gd.on('plotly_afterplot', () => { fitTitle(gd); document.dispatchEvent(new CustomEvent('ae-plot-drawn', {detail: gd})); });
  };
  const patch = (P) => {
    if (!P || P.__aePatched || typeof P.react !== 'function') return;
    P.__aePatched = true;
    const react = P.react.bind(P);
    P.react = (gd, data, layout, config) => {
      if (gd && gd.nodeType === 1 && Array.isArray(data) && layout) {
        const base = baseFonts(layout);
        layout = scaled(layout, base);
        config = Object.assign({}, config || {}, configFor(P));
        const out = react(gd, data, layout, config);
        gd.__aeBase = base;
        Promise.resolve(out).then(() => { watch(gd); fitTitle(gd); });
        return out;
      }
      return react(gd, data, layout, config);
    };
  };
  if (window.Plotly) patch(window.Plotly);
  else {
    let current;
    Object.defineProperty(window, 'Plotly', {configurable: true, enumerable: true,
      get: () => current, set: (v) => { current = v; patch(v); }});
  }
  const rescalePlots = () => {
    const P = window.Plotly;
    if (!P) return;
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
      if (!gd.__aeBase || !gd.layout) continue;
      const update = scaledUpdate(gd.__aeBase);
      if (!(gd.layout.title && typeof gd.layout.title === 'object')) delete update['title.font.size'];
      P.relayout(gd, update);
    }
  };
  window.aeLecture = (on) => { document.body.classList.toggle('ae-lecture', on); document.documentElement.classList.toggle('ae-lecture', on); rescalePlots(); repointGradients(); };

  // --- Colour bars: Plotly fills them with url(<page address>#id); once the address changes
  // (a toggle writes the view into it) that points nowhere. Point every fill at this address.
  const repointGradients = () => {
    const here = window.location.href.split('#')[0];
    document.querySelectorAll('.js-plotly-plot [style*="url("]').forEach((el) => {
      for (const prop of ['fill', 'stroke']) {
        const v = el.style[prop];
        const m = v && v.match(/url\("?([^"#)]*)#([^")]+)"?\)/);
        if (m && m[1] !== here) el.style[prop] = `url("${here}#${m[2]}")`;
      }
    });
  };
  window.aeRepointGradients = repointGradients;
  // --- Dark mode: the figures' paper, grid and text follow the page (figures are drawn light).
  const DARK = {'paper_bgcolor': '#0f172a', 'plot_bgcolor': '#0f172a', 'font.color': '#e2e8f0',
    'title.font.color': '#f1f5f9', 'xaxis.gridcolor': '#334155', 'yaxis.gridcolor': '#334155'};
  const LIGHT = {'paper_bgcolor': 'white', 'plot_bgcolor': 'white', 'font.color': '#2a3f5f',
    'title.font.color': '#2a3f5f', 'xaxis.gridcolor': '#EBF0F8', 'yaxis.gridcolor': '#EBF0F8'};
  const isDark = () => document.body.classList.contains('dark');
  const themePlot = (gd) => {
    const L = gd._fullLayout;
    if (!L || !window.Plotly) return;
    const want = isDark() ? DARK : LIGHT;
    if (L.paper_bgcolor === want.paper_bgcolor) return;  // drawn light, or themed already: no loop
    window.Plotly.relayout(gd, want);
  };
  const themePlots = () => document.querySelectorAll('.js-plotly-plot').forEach(themePlot);
  document.addEventListener('ae-plot-drawn', (e) => { themePlot(e.detail); repointGradients(); });
  window.aeDark = (on) => { document.body.classList.toggle('dark', on); themePlots(); repointGradients(); };
  // The address changes after a toggle (the link follows the view): re-point once it has.
  for (const name of ['replaceState', 'pushState']) {
    const original = window.history[name].bind(window.history);
    window.history[name] = (...args) => { const out = original(...args); setTimeout(repointGradients, 0); return out; };
  }

  // --- Keyboard: never while typing.
  const typing = (el) => {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
    return tag === 'INPUT' && !['checkbox', 'radio', 'button', 'submit', 'reset', 'range'].includes(el.type);
  };
  const visible = (el) => !!el && el.offsetParent !== null;
  const showGenerate = () => {
    const panel = document.getElementById('ae-gen-tab');
    if (visible(panel)) return 0;
    const tab = Array.from(document.querySelectorAll('[role=tab]')).find(
      (t) => (t.getAttribute('aria-controls') === 'ae-gen-tab') || t.id === 'ae-gen-tab-button');
    if (tab) { tab.click(); return 120; }
    return 0;
  };
  const press = (id) => {
    const wait = showGenerate();
    setTimeout(() => {
      const b = document.getElementById(id);
      if (b && !b.disabled) b.click();
      document.documentElement.dataset.aePressed = id;  // what the last key pressed, for tests
    }, wait);
  };
  // A Run streams: Gradio marks its outputs, and run_stream.js marks the page until its last reply.
  const running = () => document.documentElement.dataset.aeRunning === '1' || !!document.querySelector('#ae-gen-text.pending, #ae-gen-text .pending, #ae-gen-text.generating, #ae-gen-text .generating, #ae-dist.pending, #ae-dist .pending');
  const nudge = (id, delta) => {
    const r = document.querySelector('#' + id + ' input[type=range]');
    if (!r || r.disabled) return;
    const v = Math.min(Number(r.max), Math.max(Number(r.min), Number(r.value) + delta));
    if (v === Number(r.value)) return;
    r.value = String(v);
    r.dispatchEvent(new Event('input', {bubbles: true}));
    r.dispatchEvent(new Event('change', {bubbles: true}));
  };
  const moveQuery = (delta) => {
    const sel = document.querySelector('#ae-tokens .ae-sel');
    if (!sel) return;
    const next = document.querySelector('#ae-tokens [data-pos="' + (Number(sel.dataset.pos) + delta) + '"]');
    if (next) next.click();
  };
  let stageAt = -1;
  const stage = (delta) => {
    const all = Array.from(document.querySelectorAll('.ae-walk .ae-stage'));
    if (!all.length || !visible(all[0])) return;
    stageAt = Math.min(all.length - 1, Math.max(0, stageAt + delta));
    all.forEach((s, i) => s.classList.toggle('ae-focus', i === stageAt));
    all[stageAt].scrollIntoView({behavior: 'smooth', block: 'center'});
  };
  const KEYS = {
    'ArrowRight': () => press('ae-step'),
    'ArrowLeft': () => press('ae-rewind'),
    ' ': () => press(running() ? 'ae-stop' : 'ae-run'),
    'j': () => nudge('ae-layer', 1),
    'k': () => nudge('ae-layer', -1),
    'l': () => nudge('ae-head', 1),
    'h': () => nudge('ae-head', -1),
    ']': () => moveQuery(1),
    '[': () => moveQuery(-1),
    'n': () => stage(1),
    'p': () => stage(-1),
  };
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const action = KEYS[event.key];
    const target = event.target;
    if (!action || typing(target)) return;
    event.preventDefault();
    if (target && target !== document.body && typeof target.blur === 'function') target.blur();
    action();
  });
})();
