// Polls an import's status and moves the progress bar; reloads the page when it is finished.
(function () {
  "use strict";
  var box = document.querySelector("[data-import-progress]");
  if (!box) { return; }
  var bar = document.getElementById("import-progress");
  var text = document.getElementById("import-progress-text");
  function poll() {
    fetch(box.getAttribute("data-import-progress"), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data.status !== "importing" && data.status !== "checking") {
          window.location.reload();
          return;
        }
        var p = data.progress || {};
        if (p.total) {
          var percent = Math.round(100 * p.done / p.total);
          bar.value = percent;
          bar.textContent = percent + " %";
        }
        text.textContent = (p.phase || "") + (p.total ? " " + p.done + " of " + p.total : "");
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
