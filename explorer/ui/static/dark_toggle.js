(on) => { document.body.classList.toggle('dark', !!on); return []; }
