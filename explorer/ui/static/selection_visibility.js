() => setTimeout(() => {
  const gen = document.getElementById('ae-gen-tab');
  const box = document.getElementById('ae-selection');
  if (box) box.style.display = gen && gen.offsetParent !== null ? 'none' : '';
}, 30)
