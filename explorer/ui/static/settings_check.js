// A setting typed out of its widget's range never reaches Gradio's own range check (which
// answers a bare "Error" and blanks the chart): it goes aside in the last argument, for the
// server to refuse with its reason, and the range's low end stands in for it meanwhile (the
// server then puts the widgets back to the settings in use).
(...args) => {
  const fields = [[2, 'ae-temp', 'temperature'], [3, 'ae-topk', 'top_k'], [4, 'ae-topp', 'top_p'], [5, 'ae-seed', 'seed']];
  let typed = null;
  for (const [i, id, name] of fields) {
    if (args[i] === null || args[i] === undefined || args[i] === '') continue;
    const input = document.querySelector(`#${id} input[type=range]`) || document.querySelector(`#${id} input[type=number]`);
    const bound = (attr, none) => (input && input.getAttribute(attr) !== null && input.getAttribute(attr) !== '' ? Number(input.getAttribute(attr)) : none);
    const lo = bound('min', -Infinity), hi = bound('max', Infinity);
    const value = Number(args[i]);
    if (Number.isFinite(value) && value >= lo && value <= hi) continue;
    typed = Object.assign(typed || {}, {[name]: args[i]});
    args[i] = Number.isFinite(lo) ? lo : 0;
  }
  args[args.length - 1] = typed;
  return args;
}
