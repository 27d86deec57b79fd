// Case Inbox: the little JavaScript the pages need. Everything works without it; this adds
// local times, catch-up after a reconnect, and keeping a thread scrolled to its newest text.
(function () {
  "use strict";

  // One style for every time on every page (inbox/web.py's time_ago): how long ago or until, in words, and
  // the exact moment in the viewer's zone on hover; past a week, the date. A status timeline's steps
  // (data-local="exact") say the moment itself, to the second.
  function relativeWords(moment) {
    var seconds = Math.round((Date.now() - moment.getTime()) / 1000);
    var ahead = seconds < 0, span = Math.abs(seconds), amount;
    if (span < 60) return ahead ? "in a moment" : "just now";
    if (span < 3600) amount = Math.floor(span / 60) + " min";
    else if (span < 86400) amount = Math.floor(span / 3600) + " h";
    else if (span < 7 * 86400) amount = Math.floor(span / 86400) + " d";
    else {
      var sameYear = moment.getFullYear() === new Date().getFullYear();
      return moment.toLocaleDateString([], sameYear ? { month: "short", day: "numeric" } : { month: "short", day: "numeric", year: "numeric" });
    }
    return ahead ? "in " + amount : amount + " ago";
  }

  function localiseTimes(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment)) return;
      var full = moment.toLocaleString([], { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
      if (el.getAttribute("data-local") === "exact") {
        el.textContent = moment.toLocaleString([], { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit" });
        return;
      }
      el.textContent = relativeWords(moment);
      el.title = full;
    });
  }

  function scrollThreads(root) {
    root.querySelectorAll("ol.messages").forEach(function (list) { list.scrollTop = list.scrollHeight; });
  }

  // After the event stream (re)opens, re-fetch every pane that can be stale: whatever was
  // published while the tab was not listening is caught up this way. Each pane is the source of
  // its own request: htmx keeps one request per element and queues only the last of the others,
  // so with one shared source most panes were never re-fetched.
  function refreshPanes() {
    var fetches = [];
    document.querySelectorAll("[data-refresh-url]").forEach(function (el) {
      if (!el.id) return;
      var pane = "#" + el.id;
      fetches.push(htmx.ajax("GET", el.getAttribute("data-refresh-url"), { source: pane, target: pane, swap: "outerHTML" }));
    });
    return Promise.all(fetches);
  }

  // An open thread that is unread posts its "mark read" form (templates/inbox/_thread.html) once
  // the stream is open and the panes are fresh: the read event then reaches this tab, and no
  // re-fetch that started before the read can land after it with the old unread count.
  var streamOpen = false;

  function markThreadsRead(root) {
    if (!streamOpen || !root.querySelectorAll) return;
    var forms = Array.prototype.slice.call(root.querySelectorAll("form.mark-read"));
    if (root.matches && root.matches("form.mark-read")) forms.push(root);
    forms.forEach(function (form) { htmx.trigger(form, "read-thread"); });
  }

  function streamOpened() {
    streamOpen = true;
    var markRead = function () { markThreadsRead(document); };
    refreshPanes().then(markRead, markRead);
  }

  // "Send later": the time typed is in the viewer's zone, so send that zone (and the offset, for a
  // browser that cannot name it). A stored time (data-utc) is shown in the viewer's zone first;
  // without this script, the organisation's zone is meant, as the page says.
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function localValue(moment) {
    return moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) +
      "T" + pad(moment.getHours()) + ":" + pad(moment.getMinutes());
  }

  function browserZones(root) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    root.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
      var form = input.form;
      if (!form || !zone) return;
      form.querySelectorAll("input[name=send_at][data-utc]").forEach(function (field) {
        var moment = new Date(field.getAttribute("data-utc"));
        if (!isNaN(moment)) field.value = localValue(moment);
        field.removeAttribute("data-utc");
      });
      input.value = zone;
      form.querySelectorAll("[data-zone-label]").forEach(function (label) { label.textContent = "(your time, " + zone + ")"; });
    });
    root.querySelectorAll("input[data-browser-offset]").forEach(function (input) {
      input.value = String(-new Date().getTimezoneOffset());
    });
  }

  // A live update shared by many readers' tabs (the case page's events list) cannot carry any one sign-in's
  // CSRF token: its forms get this page's, the one every htmx request sends (<body hx-headers>).
  function fillCsrfTokens(root) {
    if (!root.querySelectorAll) return;
    var headers = document.body.getAttribute("hx-headers");
    if (!headers) return;
    var token = "";
    try { token = JSON.parse(headers)["X-CSRF-Token"] || ""; } catch (e) { return; }
    root.querySelectorAll("input[name=csrf_token]").forEach(function (input) {
      if (!input.value) input.value = token;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    setInterval(function () { localiseTimes(document); }, 60000); // "just now" becomes "1 min ago"
    scrollThreads(document);
    browserZones(document);
  });
  document.addEventListener("htmx:load", function (event) {
    fillCsrfTokens(event.target);
    localiseTimes(event.target);
    browserZones(event.target);
    markThreadsRead(event.target);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    localiseTimes(event.detail.target || document);
    scrollThreads(document);
  });
  document.addEventListener("htmx:sseOpen", streamOpened);
  // The server ended this sign-in and told the stream so (base.html's sse-close closed it, so it does not
  // retry against the sign-in page): say so where the page can be read, and leave the page as it is.
  document.addEventListener("htmx:sseClose", function (event) {
    if (!event.detail || event.detail.type !== "message") return;
    var notice = document.getElementById("signed-out");
    if (notice) notice.hidden = false;
  });
  // The server could not deliver an update this tab may have needed: catch up the same way.
  document.addEventListener("sse:refresh", refreshPanes);

  // The SMS queue page: a text that changes status may move between states and counts, so its pane is
  // re-fetched — at most once a second while a batch drains, and once more after the last change.
  var queueBusy = false, queueAgain = false;

  function refreshQueue() {
    var pane = document.getElementById("queue-pane");
    if (!pane) return;
    if (queueBusy) { queueAgain = true; return; }
    queueBusy = true;
    htmx.ajax("GET", pane.getAttribute("data-refresh-url"), { source: "#queue-pane", target: "#queue-pane", swap: "outerHTML" });
    setTimeout(function () {
      queueBusy = false;
      if (queueAgain) { queueAgain = false; refreshQueue(); }
    }, 1000);
  }

  document.addEventListener("htmx:sseMessage", function (event) {
    var message = event.detail;
    if (message && message.type === "update" && typeof message.data === "string" &&
        message.data.indexOf('id="message-') !== -1) {
      refreshQueue();
    }
  });
})();
