// The survival dashboard: figures fetched as JSON from the snapshot's URL (cached by the browser:
// a snapshot never changes), PNG/SVG downloads, and the progress of a refresh. No inline script.
// Texts shown to people come translated from the template (data-failed on #run).
(function () {
  var box = document.querySelector("[data-figures-url]");
  if (box) {
    fetch(box.dataset.figuresUrl, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (figures) {
        box.querySelectorAll(".plot[data-figure]").forEach(function (el) {
          var fig = figures[el.dataset.figure];
          if (fig) { Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false}); }
        });
      });
  }
  document.querySelectorAll("[data-download]").forEach(function (button) {
    button.addEventListener("click", function () {
      Plotly.downloadImage(document.getElementById("fig-" + button.dataset.download),
        {format: button.dataset.format, filename: "carttrack-" + button.dataset.download, width: 1000, height: 600});
    });
  });
  (function poll() {
    var run = document.getElementById("run");
    if (!run || !run.dataset.run) return;
    fetch(run.dataset.run, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("run-step").textContent = s.step || s.status_label || s.status;
      document.getElementById("run-progress").value = s.progress;
      if (s.status === "done") { window.location.search = window.location.search.replace(/&?run=\d+/, ""); }
      else if (s.status === "failed") { run.classList.add("error"); document.getElementById("run-step").textContent = (run.dataset.failed || "failed: {error} (the previous snapshot is kept)").replace("{error}", s.error); }
      else { setTimeout(poll, 1000); }
    });
  })();
})();
