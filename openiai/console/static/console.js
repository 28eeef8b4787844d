// Optional niceties; every page works without script.
document.addEventListener("DOMContentLoaded", function () {
  var range = document.getElementById("threshold");
  var out = document.getElementById("threshold-value");
  if (range && out) {
    range.addEventListener("input", function () { out.value = range.value; });
  }
});
