// The Models page's download form: open in the desktop column (its heading is not a toggle
// there); on a narrow window, closed once there are models, so the list is in the first screen.
// The listeners look the form up each time, so they outlive htmx's history restores.
(function () {
  var narrow = window.matchMedia("(max-width: 900px)");
  function fit() {
    var details = document.getElementById("download-details");
    if (details) { details.open = !(narrow.matches && details.dataset.collapseNarrow === "true"); }
  }
  fit();
  narrow.addEventListener("change", fit);
  // In the wide layout the heading is not a toggle: refuse the click rather than reopen after it.
  document.addEventListener("click", function (event) {
    if (!narrow.matches && event.target.closest("#download-details > summary")) { event.preventDefault(); }
  });
})();
