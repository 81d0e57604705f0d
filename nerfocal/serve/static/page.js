// The serve page: POST the text box to /predict and show the entities inline.
(function () {
  "use strict";
  var box = document.getElementById("text"), button = document.getElementById("tag");
  var out = document.getElementById("output"), status = document.getElementById("status");

  function tag() {
    var text = box.value;
    button.disabled = true;
    status.textContent = "tagging…";
    status.className = "";
    fetch("predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ texts: [text] })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (r) {
      if (!r.ok) throw new Error(r.body.error || "request failed");
      var entities = r.body.predictions[0].entities;
      out.innerHTML = nerfocalHighlight(text, entities);
      status.textContent = entities.length + (entities.length === 1 ? " entity" : " entities");
    }).catch(function (err) {
      status.textContent = "error: " + err.message;
      status.className = "error";
    }).finally(function () { button.disabled = false; });
  }

  function legend(labels) {
    var types = [];
    labels.forEach(function (label) {
      var type = label.replace(/^[BIESLU]-/, "");
      if (label !== "O" && types.indexOf(type) < 0) types.push(type);
    });
    var text = document.createElement("span");
    return types.map(function (type) {
      text.textContent = type; // escaped by the DOM
      return '<mark class="nf-ent" style="background: ' + nerfocalColour(type) + '">' +
        '<span class="nf-label">' + text.innerHTML + "</span></mark>";
    }).join(" ");
  }

  button.addEventListener("click", tag);
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) tag();
  });
  fetch("info").then(function (r) { return r.json(); }).then(function (info) {
    document.getElementById("model").textContent =
      info.model + " · " + info.backend + " · nerfocal " + info.version;
    document.getElementById("legend").innerHTML = legend(info.labels);
  }).catch(function () { /* the page works without the legend */ });
})();
