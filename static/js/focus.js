// Focus moves to what just changed: a message after a save, or the first field in error,
// so a keyboard or screen-reader user does not start again at the top of the page.
(function () {
  var target = document.querySelector("[data-focus=first]") || document.querySelector("[data-focus]");
  if (target) {
    target.focus();
  }
})();
