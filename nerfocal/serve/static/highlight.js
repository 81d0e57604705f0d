// nerfocal entity highlighting: one function, shared by the serve page and static renderers.
// nerfocalHighlight(text, entities) -> HTML string. `entities` are nerfocal records
// {text, label, start, end, score}; start/end count Unicode code points (Python string offsets),
// not the UTF-16 units of JavaScript strings, so the text is sliced as an array of code points.
(function (root) {
  "use strict";
  var PALETTE = {
    PER: "#aa9cfc", LOC: "#ff9561", ORG: "#7aecec", MISC: "#e4e7d2", GPE: "#feca74",
    DATE: "#bfe1d9", EVENT: "#ffeb80", PRODUCT: "#bfeeb7", WORK_OF_ART: "#f0d0ff"
  };

  function escapeHtml(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function colour(label) {
    if (PALETTE[label]) return PALETTE[label];
    var hash = 0;
    for (var i = 0; i < label.length; i++) hash = (hash * 31 + label.charCodeAt(i)) >>> 0;
    return "hsl(" + (hash % 360) + ", 75%, 78%)";
  }

  function nerfocalHighlight(text, entities) {
    var chars = Array.from(text); // code points, as the server counts them
    var sorted = entities.slice().sort(function (a, b) { return a.start - b.start; });
    var html = "", at = 0;
    sorted.forEach(function (e) {
      if (e.start < at || e.end <= e.start || e.end > chars.length) return; // overlapping or out of range
      html += escapeHtml(chars.slice(at, e.start).join(""));
      var title = e.label + " " + Number(e.score).toFixed(3);
      html += '<mark class="nf-ent" data-label="' + escapeHtml(e.label) + '" data-score="' + e.score +
        '" title="' + escapeHtml(title) + '" style="background: ' + colour(e.label) + '">' +
        '<span class="nf-text">' + escapeHtml(chars.slice(e.start, e.end).join("")) + "</span>" +
        '<span class="nf-label">' + escapeHtml(e.label) + "</span></mark>";
      at = e.end;
    });
    return html + escapeHtml(chars.slice(at).join(""));
  }

  root.nerfocalHighlight = nerfocalHighlight;
  root.nerfocalColour = colour;
})(typeof window !== "undefined" ? window : globalThis);
