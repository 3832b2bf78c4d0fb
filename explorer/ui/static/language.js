(lang) => {
  // The whole page in `lang`: Gradio's own switch of language (its Settings panel's), changeLocale,
  // which its core module exports. Importing that module's URL again gives the module the page runs,
  // so every gr.I18n text, and <html lang> (which the canvases read), follows at once. Without a
  // `lang` (on page load): the link's ?lang=, else the language Gradio took from the browser.
  const wanted = lang || new URLSearchParams(window.location.search).get('lang');
  // Names Gradio does not translate, or not again after a switch: the tab bar keeps the names its
  // tabs had when first drawn, and the examples' labels and the Q/K/V steps' links are plain text.
  // They are named again from the page's own translations (gr.I18n's, in gradio_config), now and
  // whenever they are drawn again.
  const PLAIN = '#ae-tabs button, #ae-examples button, #ae-steps-nav a';
  const relabel = () => {
    const all = (window.gradio_config || {}).i18n_translations || {};
    const now = (document.documentElement.lang || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
    let names = window.__aeNames && window.__aeNames[now];
    if (!names) {  // a text in any language -> the same text now
      names = new Map();
      for (const words of Object.values(all)) {
        for (const [key, text] of Object.entries(words || {})) names.set(text, (all[now] || {})[key] || key);
      }
      window.__aeNames = Object.assign(window.__aeNames || {}, {[now]: names});
    }
    document.querySelectorAll(PLAIN).forEach((el) => {
      const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let node = walk.nextNode(); node; node = walk.nextNode()) {
        const text = node.nodeValue.trim();
        const name = text && names.get(text);
        if (name && name !== text) node.nodeValue = node.nodeValue.replace(text, name);
      }
    });
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
