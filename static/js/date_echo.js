/* The date entered, shown as read, with its day after the infusion (issue 23).
 *
 * A browser's date field may read "02.12.2026" in another order than the clinician meant; the
 * echo beside the field says which date it has, in the page's language, and which clinical day
 * that is. The form carries the patient's infusion dates (data-infusions, ISO, comma-separated)
 * and the sentences in the page's language (data-echo-day, data-echo-plain, with %(date)s,
 * %(day)s and %(infusion)s filled here). The echo is written into an aria-live element next to
 * the field ([data-date-echo-for=<field id>], made here if the page has none). */
(function () {
  "use strict";

  function parts(text) {
    var match = /^(\d{4,})-(\d{2})-(\d{2})/.exec(text || "");
    return match ? { y: +match[1], m: +match[2], d: +match[3] } : null;
  }

  function dayNumber(p) {
    return Math.round(Date.UTC(p.y, p.m - 1, p.d) / 86400000);
  }

  function shown(p) {
    var lang = document.documentElement.lang || undefined;
    var when = new Date(Date.UTC(p.y, p.m - 1, p.d));
    try {
      return new Intl.DateTimeFormat(lang, {
        day: "numeric", month: "short", year: "numeric", timeZone: "UTC"
      }).format(when);
    } catch (error) {
      return p.y + "-" + String(p.m).padStart(2, "0") + "-" + String(p.d).padStart(2, "0");
    }
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (all, name) {
      return name in values ? values[name] : all;
    });
  }

  function echo(form, input, output, infusions) {
    var read = parts(input.value);
    if (!read) {
      output.textContent = "";
      return;
    }
    var on = dayNumber(read);
    var base = null;
    infusions.forEach(function (infusion) {
      if (dayNumber(infusion) <= on) base = infusion;
    });
    if (base === null && infusions.length) base = infusions[0]; // baseline: from the first
    if (base === null) {
      output.textContent = fill(form.dataset.echoPlain || "%(date)s", { date: shown(read) });
      return;
    }
    var day = String(on - dayNumber(base)).replace("-", "\u2212");
    output.textContent = fill(form.dataset.echoDay || "%(date)s", {
      date: shown(read), day: day, infusion: shown(base)
    });
  }

  function start() {
    document.querySelectorAll("form[data-infusions]").forEach(function (form) {
      var infusions = form.dataset.infusions.split(",").map(parts).filter(Boolean);
      infusions.sort(function (a, b) { return dayNumber(a) - dayNumber(b); });
      form.querySelectorAll('input[type="date"], input[type="datetime-local"]').forEach(
        function (input) {
          var output = input.id && form.querySelector('[data-date-echo-for="' + input.id + '"]');
          if (!output) {
            output = document.createElement("p");
            output.className = "date-echo muted";
            output.setAttribute("aria-live", "polite");
            output.setAttribute("data-date-echo-for", input.id || "");
            input.insertAdjacentElement("afterend", output);
          }
          var update = function () { echo(form, input, output, infusions); };
          input.addEventListener("input", update);
          input.addEventListener("change", update);
          update();
        }
      );
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
