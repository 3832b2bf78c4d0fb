(lang) => {
  // The whole page in `lang`: Gradio's own switch of language (its Settings panel's), changeLocale,
  // which its core module exports. Importing that module's URL again gives the module the page runs,
  // so every gr.I18n text, and <html lang> (which the canvases read), follows at once. Without a
  // `lang` (on page load): the link's ?lang=, else the language Gradio took from the browser.
  const wanted = lang || new URLSearchParams(window.location.search).get('lang');
  // Names Gradio does not translate, or not again after a switch: the tab bar keeps the names its
  // tabs had when first drawn, and the examples' labels and the Q/K/V steps' links are plain text.
  // Each place is named again from the page's own translations (gr.I18n's, in gradio_config) of
  // the English texts it may show (from the page's config too), now and whenever it is redrawn.
  const config = window.gradio_config || {};
  const english = (elemId) => {
    const c = (config.components || []).find((c) => c.props && c.props.elem_id === elemId) || {};
    const p = c.props || {};
    if (elemId === 'ae-examples') return (p.sample_labels || []).map(String);
    const text = document.createElement('textarea');  // the HTML's entities (&#95;) as characters
    return String(p.value || '').split(/<[^>]*>/).map((t) => { text.innerHTML = t; return text.value.trim(); })
      .filter(Boolean);
  };
  const keyOf = (label) => {
    const m = /__i18n__(\{[^}]*\})/.exec(label || '');
    try { return m ? JSON.parse(m[1]).key : null; } catch (err) { return null; }
  };
  const PLACES = {
    '#ae-tabs button': () => (config.components || []).filter((c) => c.type === 'tabitem')
      .map((c) => keyOf(c.props && c.props.label)).filter(Boolean),
    '#ae-examples button': () => english('ae-examples'),
    '#ae-steps-nav a': () => english('ae-steps-nav'),
  };
  const relabel = () => {
    const all = config.i18n_translations || {};
    const now = (document.documentElement.lang || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
    window.__aeNames = window.__aeNames || {};
    for (const [selector, keys] of Object.entries(PLACES)) {
      const id = selector + '|' + now;
      if (!window.__aeNames[id]) {  // a text of this place in any language -> the same text now
        const names = new Map();
        for (const key of keys()) {
          const name = (all[now] || {})[key] || key;
          names.set(key, name);
          for (const words of Object.values(all)) if (words && words[key]) names.set(words[key], name);
        }
        window.__aeNames[id] = names;
      }
      const names = window.__aeNames[id];
      document.querySelectorAll(selector).forEach((el) => {
        const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        for (let node = walk.nextNode(); node; node = walk.nextNode()) {
          const text = node.nodeValue.trim();
          const name = text && names.get(text);
          if (name && name !== text) node.nodeValue = node.nodeValue.replace(text, name);
        }
      });
    }
  };
  if (!window.__aeRelabel) {
    window.__aeRelabel = true;
    let pending = false;  // at most once a frame, however many nodes changed
    const later = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; relabel(); });
    };
    new MutationObserver(later).observe(document.documentElement, {attributes: true, attributeFilter: ['lang']});
    new MutationObserver(later).observe(document.body, {childList: true, subtree: true, characterData: true});
  }
  relabel();
  // Only a real change: Gradio then writes every gr.I18n value again, a panel's first message too
  // over what the server has put there since (language.py sends those panels again).
  const now = (document.documentElement.lang || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  if ((wanted !== 'en' && wanted !== 'zh') || wanted === now) return [];
  const url = [...document.querySelectorAll('link[rel=modulepreload], script[type=module][src]')]
    .map((el) => el.href || el.src)
    .concat(performance.getEntriesByType('resource').map((entry) => entry.name))
    .find((u) => /\/core-[\w-]+\.js(\?.*)?$/.test(u || ''));
  if (url) {
    import(url)
      .then((core) => core.changeLocale && core.changeLocale(wanted))
      .catch((err) => console.warn('Attention Explorer: no language switch', err));
  }
  return [];
}
