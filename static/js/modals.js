// Modals (the Architecture and Extract Activations dialogs) arrive by htmx into #modal-root as a
// <dialog>. Opened with showModal(), the browser moves focus into the dialog and makes the page
// behind it inert, so Tab and the screen reader stay inside. However a modal goes (Escape, its
// close link or Cancel, a click on the backdrop — studio.js removes it — or an answer that
// empties #modal-root, such as a started extraction), focus goes back to what opened it, so a
// keyboard user carries on from the same place.
(function () {
  var root = document.getElementById("modal-root");
  if (!root) { return; }
  var opener = null;   // the element whose request opened the modal now shown
  var place = null;    // where to find it again if a live update has replaced it meanwhile

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    // A request from inside the modal (load a template, a refused submit) replaces the modal
    // with a new one: the opener stays the one outside.
    if (event.detail.target !== root || root.contains(elt)) { return; }
    opener = elt;
    var holder = elt.parentElement && elt.parentElement.closest("[id]");
    place = holder && {id: holder.id, get: elt.getAttribute("hx-get")};
  });

  function show(dialog) {
    dialog.showModal();
    // A modal shown again after a refused submit starts at the first field that was refused.
    var refused = dialog.querySelector(".field .field-error");
    var field = refused && refused.closest(".field").querySelector("input:not([type=hidden]), select, textarea");
    // Otherwise what the modal marks autofocus takes the focus. showModal() would do that itself,
    // but htmx has already tried to focus it while the dialog was closed, after which the
    // browser may leave the focus where it was.
    var first = field || (dialog.hasAttribute("autofocus") ? dialog : dialog.querySelector("[autofocus]"));
    if (first) { first.focus(); }
  }

  function found() {
    if (opener && opener.isConnected) { return opener; }
    var holder = place && document.getElementById(place.id);
    return holder && place.get && holder.querySelector('[hx-get="' + CSS.escape(place.get) + '"]');
  }

  function restoreFocus() {
    var target = found();
    opener = place = null;
    if (target) { target.focus(); }
  }

  new MutationObserver(function () {
    var dialog = root.querySelector("dialog");
    if (dialog && !dialog.open) {
      show(dialog);
    } else if (!dialog && opener) {
      restoreFocus();
    }
  }).observe(root, {childList: true});

  // The page behind is inert, but past the modal's last field Tab would leave the page for the
  // browser's own controls: it goes round to the first instead (and Shift+Tab the other way).
  var TABBABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";
  document.addEventListener("keydown", function (event) {
    var dialog = event.key === "Tab" && root.querySelector("dialog[open]");
    if (!dialog) { return; }
    var stops = Array.prototype.filter.call(dialog.querySelectorAll(TABBABLE), function (el) {
      return el.getClientRects().length > 0;
    });
    if (!stops.length) { return; }
    var first = stops[0], last = stops[stops.length - 1], at = document.activeElement;
    var leaving = event.shiftKey ? (at === first || at === dialog) : at === last;
    if (leaving || !dialog.contains(at)) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    }
  });

  // A dialog the browser closed itself goes as the others do.
  document.addEventListener("close", function (event) {
    if (event.target.matches && event.target.matches("#modal-root dialog")) { event.target.remove(); }
  }, true);
})();
