// Case Inbox on a phone, and a few page-wide touches: the header's menu, the open alerts in the tab title,
// the optional desktop notification, the client phone's picked photo. Everything works without it.
(function () {
  "use strict";

  // The header folds behind "Menu" on a narrow screen (static/app.css); Escape or a click elsewhere closes it.
  function setUpMenu() {
    var header = document.querySelector("header.top");
    var toggle = header && header.querySelector(".menu-toggle");
    if (!toggle) return;
    header.classList.add("collapsible");
    function show(open) {
      header.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
    toggle.addEventListener("click", function () { show(!header.classList.contains("open")); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && header.classList.contains("open")) { show(false); toggle.focus(); }
    });
    document.addEventListener("click", function (event) {
      if (header.classList.contains("open") && !header.contains(event.target)) show(false);
    });
  }

  // The reader's open alerts, as the header's badge says them ("Alerts (3)"); null until it is known.
  function alertCount() {
    var badge = document.getElementById("alert-badge");
    var found = badge && /\((\d+)\)/.exec(badge.textContent || "");
    return found ? parseInt(found[1], 10) : null;
  }

  // The tab title and the folded menu's button carry the count, so a background tab or a phone shows it.
  var baseTitle = document.title; // as the server wrote it: never with a count
  var lastCount = null;

  function showCount() {
    var count = alertCount();
    if (count === null) return;
    document.title = (count > 0 ? "(" + count + ") " : "") + baseTitle;
    var mirror = document.querySelector("header.top .menu-count");
    if (mirror) mirror.textContent = count > 0 ? String(count) : "";
    if (lastCount !== null && count > lastCount) notify(count);
    lastCount = count;
  }

  // Desktop notifications: off unless this browser's user turned them on (from a click, as browsers require),
  // and only while the tab is hidden. They never carry a client's name or words: the screen may be shared.
  var NOTIFY_KEY = "case-inbox-notify";

  function notifyWanted() {
    try { return window.localStorage.getItem(NOTIFY_KEY) === "on"; } catch (e) { return false; }
  }

  function notify(count) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !notifyWanted()) return;
    if (!document.hidden) return;
    var note = new Notification("Case Inbox: a new alert", {
      body: count === 1 ? "1 open alert is waiting for you." : count + " open alerts are waiting for you.",
      tag: "case-inbox-alerts",
    });
    note.onclick = function () { window.focus(); window.location.href = "/alerts"; note.close(); };
  }

  function setUpNotifySettings() {
    var section = document.getElementById("desktop-notifications");
    if (!section || !("Notification" in window)) return;
    var button = section.querySelector("[data-notify-toggle]");
    var state = section.querySelector("[data-notify-state]");
    function render() {
      var on = notifyWanted() && Notification.permission === "granted";
      if (Notification.permission === "denied") {
        state.textContent = "This browser blocks notifications from Case Inbox: allow them in its site settings first.";
      } else {
        state.textContent = on ? "On in this browser." : "Off in this browser.";
      }
      button.textContent = on ? "Turn off desktop notifications" : "Turn on desktop notifications";
      button.disabled = Notification.permission === "denied";
    }
    button.addEventListener("click", function () {
      if (notifyWanted() && Notification.permission === "granted") {
        try { window.localStorage.setItem(NOTIFY_KEY, "off"); } catch (e) { /* private mode: stays off */ }
        render();
        return;
      }
      Promise.resolve(Notification.requestPermission()).then(function (permission) {
        if (permission === "granted") {
          try { window.localStorage.setItem(NOTIFY_KEY, "on"); } catch (e) { /* private mode: cannot keep it */ }
        }
        render();
      });
    });
    section.hidden = false;
    render();
  }

  // A file field with data-photo-preview (the client phone's paperclip, the composer's) is visually hidden: say
  // what was picked beside it, with the photo itself. Delegated, so a composer htmx swapped in works as well.
  function showPicked(input) {
    var preview = document.getElementById(input.getAttribute("data-photo-preview"));
    if (!preview) return;
    preview.textContent = "";
    var file = input.files && input.files[0];
    if (!file) { preview.hidden = true; return; }
    var name = document.createElement("span");
    name.textContent = file.name;
    preview.appendChild(name);
    preview.hidden = false;
    if (file.type.indexOf("image/") !== 0) return;
    var reader = new FileReader(); // a data: URL: the page's CSP allows no blob: images
    reader.onload = function () {
      var img = document.createElement("img");
      img.src = String(reader.result);
      img.alt = "Picked photo: " + file.name;
      preview.insertBefore(img, preview.firstChild);
    };
    reader.readAsDataURL(file);
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input && input.matches && input.matches("input[type=file][data-photo-preview]")) showPicked(input);
  });

  document.addEventListener("DOMContentLoaded", function () {
    setUpMenu();
    setUpNotifySettings();
    showCount();
  });
  document.addEventListener("htmx:afterSettle", showCount);
  document.addEventListener("htmx:oobAfterSwap", showCount);
})();
