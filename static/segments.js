/*
 * SMS segment counting for the browser: the same algorithm as
 * inbox/segments.py (read its docstring for the rules; change both together).
 * tests/test_segments.py checks both against Twilio's calculator, the npm
 * package sms-segments-calculator.
 *
 * Plain script, no build step:
 *   window.smsSegments.count(text)
 *     -> {encoding, characters, units, segments, perSegment}
 * and in node: require("static/segments.js").count(text).
 *
 * Plus a progressive-enhancement counter: a
 *   <textarea maxlength="320" data-segment-counter="reply-count">
 *   <span id="reply-count"></span>
 * gets "82 / 320 characters · 1 segment (GSM-7)" kept up to date.
 */
(function () {
  "use strict";

  // GSM 03.38 basic table in table order 0x00..0x7F (rows of 16), without
  // 0x1B, the escape to the extension table. Not in it: "`", "ç", "ê", ...
  var GSM7_BASIC = new Set(
    "@£$¥èéùìòÇ\nØø\rÅå" +
      "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
      " !\"#¤%&'()*+,-./" +
      "0123456789:;<=>?" +
      "¡ABCDEFGHIJKLMNO" +
      "PQRSTUVWXYZÄÖÑÜ§" +
      "¿abcdefghijklmno" +
      "pqrstuvwxyzäöñüà"
  );
  // Extension table: sent as ESC + septet, so each costs two septets.
  var GSM7_EXTENSION = new Set("\f^{}\\[~]|€");

  var GSM7_SINGLE = 160; // 140 octets * 8 / 7
  var GSM7_MULTI = 153; // (140 - 6 octets of header) * 8 / 7, rounded down
  var UCS2_SINGLE = 70; // 140 octets / 2
  var UCS2_MULTI = 67; // (140 - 6) / 2

  var ZWJ = "\u200d";
  var ZWNJ = "\u200c";
  var MARK = /^\p{M}$/u;
  var OTHER_SYMBOL = /^\p{So}$/u;
  var CONTROL = /^[\p{Cc}\p{Zl}\p{Zp}\p{Cf}]$/u;

  function count(text) {
    text = String(text);
    // Code points, like Python's len(): see SegmentCount in inbox/segments.py.
    var chars = Array.from(text);
    var encoding, sizes, single, multi;
    if (isGsm7(chars)) {
      encoding = "GSM-7";
      sizes = chars.map(septets);
      single = GSM7_SINGLE;
      multi = GSM7_MULTI;
    } else {
      encoding = "UCS-2";
      sizes = ucs2AtomSizes(chars);
      single = UCS2_SINGLE;
      multi = UCS2_MULTI;
    }
    var segments = pack(sizes, single, multi);
    return {
      encoding: encoding,
      characters: chars.length,
      units: sum(sizes),
      segments: segments,
      perSegment: segments > 1 ? multi : single,
    };
  }

  function isGsm7(chars) {
    // One character outside both tables forces UCS-2 for the whole message.
    return chars.every(function (c) {
      return GSM7_BASIC.has(c) || GSM7_EXTENSION.has(c);
    });
  }

  function septets(c) {
    return GSM7_EXTENSION.has(c) ? 2 : 1;
  }

  function sum(numbers) {
    return numbers.reduce(function (a, b) {
      return a + b;
    }, 0);
  }

  function ucs2AtomSizes(chars) {
    // Pieces that must stay in one segment: grapheme clusters, as Twilio's
    // calculator keeps them whole (not only surrogate pairs).
    var sizes = [];
    graphemes(chars).forEach(function (cluster) {
      var size = cluster.join("").length; // UTF-16 code units
      if (size <= UCS2_MULTI) {
        sizes.push(size);
      } else {
        // Longer than a whole segment: cut between code points.
        cluster.forEach(function (c) {
          sizes.push(c.length);
        });
      }
    });
    return sizes;
  }

  function pack(sizes, single, multi) {
    // Fill segments in order; a piece that doesn't fit in what is left
    // starts the next segment, so extension pairs and clusters stay whole.
    var total = sum(sizes);
    if (total === 0) return 0; // nothing is sent (Twilio's calculator says 1)
    if (total <= single) return 1;
    var segments = 1;
    var used = 0;
    sizes.forEach(function (size) {
      if (used + size > multi) {
        segments += 1;
        used = 0;
      }
      used += size;
    });
    return segments;
  }

  // Grapheme clusters, approximated exactly as in inbox/segments.py (not
  // Intl.Segmenter, so that browser and server always agree).
  function graphemes(chars) {
    var clusters = [];
    chars.forEach(function (c) {
      var last = clusters[clusters.length - 1];
      if (last && continuesCluster(last, c)) {
        last.push(c);
      } else {
        clusters.push([c]);
      }
    });
    return clusters;
  }

  function continuesCluster(cluster, c) {
    var base = cluster[0];
    var previous = cluster[cluster.length - 1];
    // Nothing attaches to or onto a line break or other control.
    if (isControl(base) || isControl(c)) return false;
    if (isExtend(c)) return true;
    // A skin tone joins an emoji, not a letter.
    if (isEmojiModifier(c)) return OTHER_SYMBOL.test(previous);
    // Emoji ZWJ sequences; So stands in for Extended_Pictographic as in Python.
    if (previous === ZWJ) return OTHER_SYMBOL.test(c);
    // Flags are pairs of regional indicators.
    if (isRegionalIndicator(c)) return cluster.length === 1 && isRegionalIndicator(base);
    return false;
  }

  function isExtend(c) {
    var cp = c.codePointAt(0);
    return MARK.test(c) || c === ZWJ || c === ZWNJ || (cp >= 0xe0020 && cp <= 0xe007f);
  }

  function isControl(c) {
    return CONTROL.test(c) && !isExtend(c);
  }

  function isEmojiModifier(c) {
    var cp = c.codePointAt(0);
    return cp >= 0x1f3fb && cp <= 0x1f3ff;
  }

  function isRegionalIndicator(c) {
    var cp = c.codePointAt(0);
    return cp >= 0x1f1e6 && cp <= 0x1f1ff;
  }

  var smsSegments = { count: count };

  // --- Live counter for textarea[data-segment-counter] -------------------

  function counterText(result, limit) {
    var chars =
      limit === null
        ? result.characters + (result.characters === 1 ? " character" : " characters")
        : result.characters + " / " + limit + " characters";
    var segs = result.segments + (result.segments === 1 ? " segment" : " segments");
    return chars + " · " + segs + " (" + result.encoding + ")";
  }

  function maxLength(textarea) {
    // data-limit: the page's maxlength, moved there by keepOverflow() so nothing typed or pasted is cut off.
    var limit = parseInt(textarea.getAttribute("data-limit") || textarea.getAttribute("maxlength"), 10);
    return isNaN(limit) || limit < 0 ? null : limit;
  }

  function update(textarea) {
    // Looked up each time: an htmx swap may replace the counter element.
    var counter = document.getElementById(textarea.getAttribute("data-segment-counter"));
    if (!counter) return;
    var result = count(textarea.value);
    var limit = maxLength(textarea);
    var over = limit !== null && result.characters > limit ? result.characters - limit : 0;
    var text = counterText(result, limit);
    if (over) text += " — " + over + " too many: shorten it to send";
    counter.textContent = text; // never innerHTML
    counter.classList.toggle("over-limit", over > 0);
    // Over the limit nothing can be sent: the buttons say so (the counter says why), and what was typed stays.
    if (textarea.form) {
      textarea.form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.disabled = over > 0;
        if (over) button.title = "The text is " + over + " characters over the limit";
        else button.removeAttribute("title");
      });
    }
  }

  // The browser's maxlength silently drops what is typed or pasted past it; with this script the limit is
  // shown and enforced on Send instead (the server checks it too).
  function keepOverflow(root) {
    if (!root || !root.querySelectorAll) return;
    var fields = Array.prototype.slice.call(root.querySelectorAll("textarea[data-segment-counter][maxlength]"));
    if (isCounted(root) && root.hasAttribute("maxlength")) fields.push(root);
    fields.forEach(function (textarea) {
      textarea.setAttribute("data-limit", textarea.getAttribute("maxlength"));
      textarea.removeAttribute("maxlength");
    });
  }

  function isCounted(el) {
    return el && el.matches && el.matches("textarea[data-segment-counter]");
  }

  function updateWithin(root) {
    keepOverflow(root);
    if (isCounted(root)) update(root);
    if (root && root.querySelectorAll) {
      root.querySelectorAll("textarea[data-segment-counter]").forEach(update);
    }
  }

  function bind(doc) {
    // Delegated, so textareas that htmx brings in later are covered without
    // binding each one (and never twice).
    doc.addEventListener("input", function (event) {
      if (isCounted(event.target)) update(event.target);
    });
    // form.reset() (e.g. after sending) changes values without an input event.
    doc.addEventListener("reset", function (event) {
      setTimeout(function () {
        updateWithin(event.target);
      }, 0);
    });
    // Initial text (prefilled drafts) on page load and in htmx-loaded content.
    doc.addEventListener("htmx:load", function (event) {
      updateWithin(event.target);
    });
    if (doc.readyState === "loading") {
      doc.addEventListener("DOMContentLoaded", function () {
        updateWithin(doc);
      });
    } else {
      updateWithin(doc);
    }
  }

  if (typeof window !== "undefined") window.smsSegments = smsSegments;
  if (typeof document !== "undefined") bind(document);
  if (typeof module !== "undefined" && module.exports) module.exports = smsSegments;
})();
