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
    else if (ahead) {
      return moment.toLocaleString([], { weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
    } else {
      var sameYear = moment.getFullYear() === new Date().getFullYear();
      return moment.toLocaleDateString([], sameYear ? { month: "short", day: "numeric" } : { month: "short", day: "numeric", year: "numeric" });
    }
    if (!ahead) return amount + " ago";
    // A time ahead (a hearing, a reminder, a scheduled text) is one to act on: its day and hour come first, since a
    // phone has no hover to show them.
    if (span < 3600) return "in " + amount;
    return moment.toLocaleString([], { weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }) +
      " (in " + amount + ")";
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

  // A thread (and the client phone's screen) opens at its newest text and follows new ones while the reader is
  // at the bottom; a reader who scrolled up keeps their place, and a "New message ↓" button says more arrived.
  var NEAR_BOTTOM_PX = 48;

  function atBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
  }

  function newBelowButton(list) {
    var button = list.parentNode && list.parentNode.querySelector(".new-below[data-for='" + list.id + "']");
    if (button || !list.parentNode) return button;
    button = document.createElement("button");
    button.type = "button";
    button.className = "new-below";
    button.setAttribute("data-for", list.id);
    button.hidden = true;
    button.textContent = "New message ↓";
    button.addEventListener("click", function () {
      var current = document.getElementById(button.getAttribute("data-for"));
      if (current) { current.scrollTop = current.scrollHeight; current.setAttribute("data-at-bottom", "true"); }
      button.hidden = true;
    });
    list.insertAdjacentElement("afterend", button);
    return button;
  }

  function trackScrolling(list, bottom) {
    list.setAttribute("data-watched", "true");
    list.setAttribute("data-at-bottom", bottom ? "true" : "false");
    list.addEventListener("scroll", function () {
      var now = atBottom(list);
      list.setAttribute("data-at-bottom", now ? "true" : "false");
      if (now) { var button = newBelowButton(list); if (button) button.hidden = true; }
    }, { passive: true });
  }

  function watchThread(list) {
    if (list.getAttribute("data-watched")) return;
    trackScrolling(list, true);
    list.scrollTop = list.scrollHeight;
  }

  function scrollThreads(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("ol.messages[id]").forEach(watchThread);
  }

  // After a live update or a catch-up: follow the thread if the reader was at the bottom, else say there is more.
  function followThreads(grew) {
    document.querySelectorAll("ol.messages[id]").forEach(function (list) {
      var before = grew[list.id];
      if (!list.getAttribute("data-watched")) {
        // a catch-up replaced the list whole: it keeps the old one's place
        var wasAtBottom = before ? before.atBottom : true;
        trackScrolling(list, wasAtBottom);
        if (!wasAtBottom && before) list.scrollTop = before.scrollTop;
      }
      if (list.getAttribute("data-at-bottom") !== "false") {
        list.scrollTop = list.scrollHeight;
      } else if (before && lastItem(list) !== before.last) {  // new at the end, not older texts loaded above
        var button = newBelowButton(list);
        if (button) button.hidden = false;
      }
    });
  }

  function lastItem(list) {
    var items = list.querySelectorAll(":scope > li[id]");
    return items.length ? items[items.length - 1].id : "";
  }

  function threadSizes() {
    var sizes = {};
    document.querySelectorAll("ol.messages[id]").forEach(function (list) {
      sizes[list.id] = { last: lastItem(list), scrollTop: list.scrollTop, atBottom: list.getAttribute("data-at-bottom") !== "false" };
    });
    return sizes;
  }

  // A photo that loads after the thread scrolled would be cut off at the bottom: follow it if the reader is there.
  document.addEventListener("load", function (event) {
    var target = event.target;
    if (!target || target.tagName !== "IMG" || !target.closest) return;
    var list = target.closest("ol.messages[id]");
    if (list && list.getAttribute("data-at-bottom") !== "false") list.scrollTop = list.scrollHeight;
  }, true);

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

  // body[data-stream] says where the stream is: "open" once it is open and the panes caught up, "down" while it
  // is cut (a "Reconnecting…" notice shows then; the browser retries on its own, and the catch-up follows).
  function setStream(state) {
    document.body.setAttribute("data-stream", state);
    var notice = document.getElementById("reconnecting");
    var signedOut = document.getElementById("signed-out");
    if (notice) notice.hidden = state !== "down" || (signedOut && !signedOut.hidden);
  }

  function streamOpened() {
    streamOpen = true;
    var caughtUp = function () {
      markThreadsRead(document);
      setStream("open");
    };
    refreshPanes().then(caughtUp, caughtUp);
  }

  function streamLost() {
    streamOpen = false;
    setStream("down");
  }

  // Live fragments swap themselves out of band into whichever panes this page shows; a fragment for a pane the
  // page does not show (a thread's bubble on the alerts page, a row removed already) is dropped here, where htmx
  // would log htmx:oobErrorNoTarget for it. Only the #live element's stream uses this (base.html).
  function oobTarget(el) {
    var spec = el.getAttribute("hx-swap-oob") || "true";
    var colon = spec.indexOf(":");
    if (spec === "true" || colon === -1) return el.id ? "#" + CSS.escape(el.id) : null;
    return spec.slice(colon + 1);
  }

  function shownOnThisPage(el) {
    var selector = oobTarget(el);
    if (!selector) return true;
    try { return document.querySelector(selector) !== null; } catch (e) { return true; }
  }

  function keepShownFragments(text) {
    if (typeof text !== "string" || text.indexOf("hx-swap-oob") === -1) return text;
    var holder = document.createElement("template");
    holder.innerHTML = text;
    var dropped = false;
    Array.prototype.slice.call(holder.content.children).forEach(function (top) {
      var parts = top.tagName === "TEMPLATE" ? Array.prototype.slice.call(top.content.children) : [top];
      parts.forEach(function (part) {
        if (part.hasAttribute("hx-swap-oob") && !shownOnThisPage(part)) { part.remove(); dropped = true; }
      });
      if (top.tagName === "TEMPLATE" && !top.content.children.length) top.remove();
    });
    return dropped ? holder.innerHTML : text;
  }

  htmx.defineExtension("shown-panes-only", {
    transformResponse: function (text) { return keepShownFragments(text); }
  });

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

  // The reply box: the cursor is in it when a conversation opens and after each send; Ctrl/Cmd+Enter sends.
  function focusReplyBox() {
    var box = document.getElementById("composer-body");
    if (box && box.offsetParent !== null) box.focus({ preventScroll: true });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var box = event.target;
    if (!box || box.id !== "composer-body" || !box.form) return;
    var send = box.form.querySelector(".composer-foot button[type=submit]");
    event.preventDefault();
    if (send && !send.disabled) box.form.requestSubmit(send);
  });

  // While a text is being sent: its buttons are disabled and Send spins, and the last attempt's error is gone.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail && event.detail.elt;
    if (!form || form.id !== "composer") return;
    form.classList.add("sending");
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = true; });
    form.querySelectorAll(":scope > .error, :scope > .ok").forEach(function (old) { old.remove(); });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail && event.detail.elt;
    if (!form || form.id !== "composer" || !document.body.contains(form)) return;
    // Not replaced (the request failed on the way): usable again, with what was typed.
    form.classList.remove("sending");
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = false; });
    var box = form.querySelector("textarea[data-segment-counter]");
    if (box) box.dispatchEvent(new Event("input", { bubbles: true }));  // the limit may disable Send again
  });
  // A send answers with the composer again (empty, or with the error and what was typed): the cursor goes back.
  document.addEventListener("htmx:load", function (event) {
    if (event.target && event.target.id === "composer") focusReplyBox();
  });

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    setInterval(function () { localiseTimes(document); }, 60000); // "just now" becomes "1 min ago"
    scrollThreads(document);
    browserZones(document);
    if (document.activeElement === document.body || !document.activeElement) focusReplyBox();
  });
  document.addEventListener("htmx:load", function (event) {
    fillCsrfTokens(event.target);
    localiseTimes(event.target);
    browserZones(event.target);
    markThreadsRead(event.target);
  });
  // Sizes before a swap (a live fragment or a catch-up), to tell after it whether a thread grew under the reader.
  var sizesBefore = {};
  document.addEventListener("htmx:beforeSwap", function () { sizesBefore = threadSizes(); });
  document.addEventListener("htmx:oobBeforeSwap", function () {
    if (!Object.keys(sizesBefore).length) sizesBefore = threadSizes();
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    localiseTimes(event.detail.target || document);
  });
  document.addEventListener("htmx:afterSettle", function () {
    followThreads(sizesBefore);
    sizesBefore = {};
  });
  document.addEventListener("htmx:sseMessage", function () {
    followThreads(sizesBefore);
    sizesBefore = {};
  });
  document.addEventListener("htmx:sseOpen", streamOpened);
  document.addEventListener("htmx:sseError", streamLost);
  // The server ended this sign-in and told the stream so (base.html's sse-close closed it, so it does not
  // retry against the sign-in page): say so where the page can be read, and leave the page as it is.
  document.addEventListener("htmx:sseClose", function (event) {
    if (!event.detail || event.detail.type !== "message") return;
    var notice = document.getElementById("signed-out");
    if (notice) notice.hidden = false;
    setStream("closed");
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
