// stafet console: a little progressive enhancement; every page works without it.
// Confirm before a bulk decision on a whole rule group.
document.addEventListener("submit", function (e) {
  var b = e.submitter;
  if (b && b.form && b.form.querySelector("input[name=rule]") && !window.confirm(b.textContent + "?")) {
    e.preventDefault();
  }
});
