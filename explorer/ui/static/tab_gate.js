() => {
  const fill = () => {
    const el = document.getElementById('__PANEL__');
    const run = (window.__aeFill || {})['__PANEL__'];
    if (el && el.offsetParent !== null && run) run();
  };
  if (__DEFER__) setTimeout(fill, 30); else fill();
  return [];
}
