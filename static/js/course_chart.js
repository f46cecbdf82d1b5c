// Draws each patient course chart from the figure JSON the page carries in a
// <script type="application/json"> block (no inline script: the pages run under a CSP).
(function () {
  document.querySelectorAll("[data-course-chart]").forEach(function (el) {
    var source = document.getElementById(el.dataset.courseChart);
    if (!source || !window.Plotly) return;
    var fig = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, fig.data, fig.layout, {
      responsive: true, displaylogo: false, displayModeBar: false
    });
  });
})();
