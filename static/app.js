// Times in the admin's own time zone: the server writes every moment as
// <time datetime="RFC 3339">UTC text (relative)</time>; this rewrites the
// text into local time and the same relative words (src/web/format.rs).
// Served as a file because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var thisYear = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
  });
  var otherYear = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
  });
  function absolute(when, now) {
    return (when.getFullYear() === new Date(now).getFullYear() ? thisYear : otherYear).format(when);
  }

  function relative(at, now) {
    var d = Math.round((at - now) / 1000), a = Math.abs(d), amount;
    if (a < 60) return "just now";
    if (a < 3600) amount = Math.floor(a / 60) + " min";
    else if (a < 172800) amount = Math.floor(a / 3600) + " h";
    else amount = Math.floor(a / 86400) + " days";
    return d > 0 ? "in " + amount : amount + " ago";
  }

  function localize(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i], at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) continue;
      // "In 6 days" counts from the server's now when the page was made: the
      // browser's clock may be off, the server's decides what is removable.
      var serverNow = Number(t.getAttribute("data-now"));
      var now = serverNow > 0 ? serverNow * 1000 : Date.now();
      var when = new Date(at);
      t.textContent = t.hasAttribute("data-relative-only")
        ? relative(at, now)
        : absolute(when, now) + " (" + relative(at, now) + ")";
      t.title = when.toString();
      t.setAttribute("data-local", "");
    }
  }

  // A form with errors: the summary at the top takes the focus, so a
  // keyboard or screen-reader user lands on what to fix.
  function focusErrors() {
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  document.addEventListener("DOMContentLoaded", function () { localize(document); focusErrors(); });
  // Parts swapped in by htmx (live run, rescanned cards, more rows).
  document.addEventListener("htmx:load", function (e) { localize(e.target); });
})();
