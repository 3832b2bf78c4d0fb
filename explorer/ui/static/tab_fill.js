// The bridge of a panel filled only while its tab shows (common.tab_listener): its click event
// runs the server's fill; the page asks for it only when the panel is visible.
window.__aeFill = window.__aeFill || {};
window.__aeFill['__PANEL__'] = () => trigger('click');
