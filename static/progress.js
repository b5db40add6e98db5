// The progress of a call request, live: each step the switch reports arrives as a
// server-sent event and is shown in the page's language. Without JavaScript the page
// refreshes itself instead.
(function () {
  "use strict";
  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  // Times in the reader's own time zone.
  document.querySelectorAll("time[data-ms]").forEach(function (t) {
    t.textContent = clock(Number(t.dataset.ms));
  });
  var box = document.getElementById("progress");
  if (!box || box.dataset.ended === "true" || !window.EventSource) return;
  var words = JSON.parse(document.getElementById("words").textContent);
  var state = document.getElementById("state");
  var outcome = document.getElementById("outcome");
  var steps = document.getElementById("steps");
  var seen = steps.children.length;
  var source = new EventSource("/v1/calls/" + encodeURIComponent(box.dataset.id) + "/events");
  var count = 0;
  source.addEventListener("step", function (ev) {
    var s = JSON.parse(ev.data);
    count += 1;
    if (count <= seen) return; // already on the page
    var text = words["state_" + s.state] || s.state;
    state.textContent = text;
    var li = document.createElement("li");
    li.dataset.state = s.state;
    var t = document.createElement("time");
    t.dataset.ms = s.at_ms;
    t.textContent = clock(s.at_ms);
    li.appendChild(t);
    li.appendChild(document.createTextNode(" " + text));
    steps.appendChild(li);
    if (s.state === "ended") {
      outcome.textContent = words["cause_" + s.cause] || words["why_" + s.cause] || words["cause_other"];
      box.dataset.ended = "true";
      var hint = document.getElementById("hint");
      if (hint) hint.remove();
      source.close();
    }
  });
})();
