// Draws each patient course chart from the figure JSON the page carries in a
// <script type="application/json"> block (no inline script: the pages run under a CSP).
// The view buttons (an infusion's days -7 to 90, the whole course) apply the x range and the
// label lanes the server placed for that view (layout.meta.relayouts), with Plotly.relayout.
(function () {
  document.querySelectorAll("[data-course-chart]").forEach(function (el) {
    var source = document.getElementById(el.dataset.courseChart);
    if (!source || !window.Plotly) return;
    var fig = JSON.parse(source.textContent);
    var relayouts = (fig.layout.meta && fig.layout.meta.relayouts) || [];
    window.Plotly.newPlot(el, fig.data, fig.layout, {
      responsive: true, displaylogo: false, displayModeBar: false
    });
    var group = document.querySelector('[data-chart-views="' + el.id + '"]');
    if (!group) return;
    var buttons = group.querySelectorAll("button[data-view-index]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        var update = relayouts[Number(button.dataset.viewIndex)];
        if (!update) return;
        window.Plotly.relayout(el, update).then(function () {
          el.dataset.view = button.dataset.viewIndex;
        });
        buttons.forEach(function (other) {
          other.setAttribute("aria-pressed", other === button ? "true" : "false");
        });
      });
    });
    el.dataset.view = "0";
  });
})();
