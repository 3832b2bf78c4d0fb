() => {
  const url = window.location.href;
  const done = (ok) => {
    const b = document.querySelector('#ae-copy-link');
    if (!b) return;
    const text = b.textContent;
    const zh = (document.documentElement.lang || '').toLowerCase().startsWith('zh');
    b.textContent = ok ? (zh ? '✓ 已复制' : '✓ Copied') : url;
    setTimeout(() => { b.textContent = text; }, 1600);
  };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).then(() => done(true), () => done(false));
  else done(false);
  return [];
}
