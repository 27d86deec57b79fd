// Case Inbox: the little JavaScript the pages need. Everything works without it; this adds
// local times, catch-up after a reconnect, and keeping a thread scrolled to its newest text.
(function () {
  "use strict";

  function localiseTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment)) return;
      var today = new Date().toDateString() === moment.toDateString();
      el.textContent = today
        ? moment.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })
        : moment.toLocaleString([], { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
      el.title = moment.toLocaleString();
    });
  }

  function scrollThreads(root) {
    root.querySelectorAll("ol.messages").forEach(function (list) { list.scrollTop = list.scrollHeight; });
  }

  // After the event stream (re)opens, re-fetch every pane that can be stale: whatever was
  // published while the tab was not listening is caught up this way.
  function refreshPanes() {
    document.querySelectorAll("[data-refresh-url]").forEach(function (el) {
      if (!el.id) return;
      htmx.ajax("GET", el.getAttribute("data-refresh-url"), { target: "#" + el.id, swap: "outerHTML" });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    scrollThreads(document);
  });
  document.addEventListener("htmx:load", function (event) { localiseTimes(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    localiseTimes(event.detail.target || document);
    scrollThreads(document);
  });
  document.addEventListener("htmx:sseOpen", refreshPanes);
})();
