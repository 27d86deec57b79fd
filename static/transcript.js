// The transcript's Print button: shown only where a script can print (without it, the browser's own Print).
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("print-transcript");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", () => window.print());
});
