// Live refresh: every data-refresh seconds, fetch this page again and swap
// its <main> in place (no reload, no scroll jump). Paused while the user
// types in a form or by the "live" button.
(function () {
  var secs = parseInt(document.body.dataset.refresh || "0", 10);
  if (!secs) return;
  var paused = false;
  var button = document.getElementById("live");
  if (button) {
    button.addEventListener("click", function () {
      paused = !paused;
      button.classList.toggle("paused", paused);
      button.textContent = paused ? "paused" : "live";
    });
  }
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  setInterval(function () {
    if (paused || busy() || document.hidden) return;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("main");
        var cur = document.getElementById("main");
        if (next && cur) cur.replaceWith(next);
      })
      .catch(function () {});
  }, secs * 1000);
})();
