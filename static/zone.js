// The booking form's time zone: the visitor's own, as the browser knows it (without
// JavaScript the form books in Korea's time).
(function () {
  "use strict";
  var field = document.getElementById("time-zone");
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (field && zone) field.value = zone;
  } catch (e) { /* keep the default */ }
})();
