// Focus moves to what just changed: a message after a save, or the close form after
// Acknowledge, so a keyboard or screen-reader user does not start again at the top of the page.
(function () {
  var target = document.querySelector("[data-focus=first]") || document.querySelector("[data-focus]");
  if (target) {
    target.focus();
  }
  // A table wider than a phone scrolls in its own box; the keyboard must be able to scroll it.
  function scrollable() {
    document.querySelectorAll("table.grid, .table-scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        box.setAttribute("tabindex", "0");
      } else if (box.getAttribute("tabindex") === "0") {
        box.removeAttribute("tabindex");
      }
    });
  }
  scrollable();
  window.addEventListener("resize", scrollable);
})();
