(on) => { window.aeDark ? window.aeDark(!!on) : document.body.classList.toggle('dark', !!on); return []; }
