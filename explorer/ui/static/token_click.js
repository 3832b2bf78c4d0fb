element.addEventListener('click', (event) => {
  const chip = event.target.closest('[data-pos]');
  if (chip) trigger('click', {pos: Number(chip.dataset.pos)});
});
const reveal = () => {  // keep the selected token in view inside the scrolling strip
  const list = element.querySelector('.ae-tok-list');
  const chip = element.querySelector('.ae-sel');
  if (list && chip) list.scrollTop = chip.offsetTop - list.offsetTop - list.clientHeight / 2;
};
watch('value', reveal);
reveal();
