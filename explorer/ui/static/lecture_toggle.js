(on) => { window.aeLecture ? window.aeLecture(!!on) : (document.body.classList.toggle('ae-lecture', !!on), document.documentElement.classList.toggle('ae-lecture', !!on)); return []; }
