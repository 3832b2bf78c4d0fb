(...values) => {
  const keys = __KEYS__;
  const defaults = __DEFAULTS__;
  const url = new URL(window.location.href);
  keys.forEach((key, i) => {
    let v = values[i];
    if (key === 'query' && v !== null && v !== undefined && v !== '') v = parseInt(v, 10);
    if (typeof v === 'boolean') v = v ? 1 : 0;
    const d = defaults[key];
    const same = d !== undefined && String(typeof d === 'boolean' ? (d ? 1 : 0) : d) === String(v);
    if (v === null || v === undefined || v === '' || Number.isNaN(v) || same) url.searchParams.delete(key);
    else url.searchParams.set(key, String(v));
  });
  const before = window.location.href.split('#')[0];
  if (url.href === window.location.href) return [];
  window.history.replaceState(window.history.state, '', url);
  // Plotly points gradient fills (colour bars) at page-url#id when the page has a <base>:
  // re-point them, or every colour bar turns blank when the URL changes.
  const after = window.location.href.split('#')[0];
  document.querySelectorAll('.js-plotly-plot [style*="url("]').forEach((el) => {
    for (const prop of ['fill', 'stroke']) {
      const v = el.style[prop];
      if (v && v.includes(before + '#')) el.style[prop] = v.split(before + '#').join(after + '#');
    }
  });
  return [];
}
