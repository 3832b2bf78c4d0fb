// Plotly clicks have no gradio event. A hidden gr.HTML polls for its plot's div, binds
// plotly_click once per Plotly emitter (Gradio redraws with Plotly.react, which keeps listeners),
// and fires its own click event with the fields (filled in by common.plot_click_bridge) of the clicked point.
const bind = () => {
  for (const gd of document.querySelectorAll('__SELECTOR__ .js-plotly-plot')) {
    if (typeof gd.on !== 'function' || gd.__aeEmitter === gd._ev) continue;
    gd.on('plotly_click', (ev) => {
      const p = ev && ev.points && ev.points[0];
      if (p) trigger('click', {__FIELDS__});
    });
    gd.__aeEmitter = gd._ev;
  }
};
bind();
setInterval(bind, 300);
