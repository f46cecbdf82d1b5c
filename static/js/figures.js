// Draws every plotly figure whose JSON sits in a <script type="application/json"> data block
// (Django's json_script) named by the element's data-figure attribute: no inline script, so the
// page works under a Content-Security-Policy without 'unsafe-inline'.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var data = document.getElementById(el.dataset.figure);
    if (!data || typeof Plotly === "undefined") return;
    var fig = JSON.parse(data.textContent);
    Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
  });
});
