// The survival dashboard: draw each stored plotly figure (its JSON is in a
// <script type="application/json"> block), image downloads, and the refresh progress.
// A file of its own so that the Content-Security-Policy allows scripts from this server only.
document.querySelectorAll(".plot").forEach(function (el) {
  var name = el.id.slice(4);
  var fig = JSON.parse(document.getElementById(name).textContent);
  Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
document.querySelectorAll("[data-download]").forEach(function (button) {
  button.addEventListener("click", function () {
    Plotly.downloadImage(document.getElementById("fig-" + button.dataset.download),
      {format: button.dataset.format, filename: "carttrack-" + button.dataset.download, width: 1000, height: 600});
  });
});
(function poll() {
  var box = document.getElementById("run");
  if (!box.dataset.run) return;
  fetch(box.dataset.run, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
    document.getElementById("run-step").textContent = s.step || s.status;
    document.getElementById("run-progress").value = s.progress;
    if (s.status === "done") { window.location.search = window.location.search.replace(/&?run=\d+/, ""); }
    else if (s.status === "failed") { box.classList.add("error"); document.getElementById("run-step").textContent = "failed: " + s.error + " (the previous snapshot is kept)"; }
    else { setTimeout(poll, 1000); }
  });
})();
