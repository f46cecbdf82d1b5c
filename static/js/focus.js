// Focus moves to what just changed: a message after a save, or the close form after
// Acknowledge, so a keyboard or screen-reader user does not start again at the top of the page.
// A form sent back with errors comes first: its summary takes the focus, and each of its links
// moves the focus to the field it names (a fieldset of radios: its first radio).
(function () {
  var summary = document.querySelector("[data-error-summary]");
  var target = summary || document.querySelector("[data-focus=first]") || document.querySelector("[data-focus]");
  if (target) {
    target.focus();
  }
  document.querySelectorAll("[data-error-summary] a[href^='#']").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var field = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
      if (!field) {
        return;
      }
      if (!field.matches("input, select, textarea, button")) {
        field = field.querySelector("input:not([type=hidden]), select, textarea") || field;
      }
      event.preventDefault();
      field.scrollIntoView({ block: "center" });
      field.focus();
    });
  });
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
