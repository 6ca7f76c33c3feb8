// Small behaviours of the studio's forms, named by data- attributes in the pages (which carry no
// inline handlers: the Content-Security-Policy forbids them).
(function () {
  document.addEventListener("click", function (event) {
    // Select All / Deselect All: every checkbox of that name in the form, then one change event
    // so the form's listeners (the extraction estimate) hear it once.
    var toggle = event.target.closest("[data-check-all], [data-uncheck-all]");
    if (toggle) {
      var checked = toggle.hasAttribute("data-check-all");
      var name = checked ? toggle.dataset.checkAll : toggle.dataset.uncheckAll;
      toggle.form.querySelectorAll('input[name="' + name + '"]').forEach(function (box) { box.checked = checked; });
      htmx.trigger(toggle.form, "change");
    }
    var emptier = event.target.closest("[data-empty-closest]");
    if (emptier) { emptier.closest(emptier.dataset.emptyClosest).replaceChildren(); }
  });

  // Enter in a field of a secondary action (a template's name in the extraction form) presses
  // that action's button, not the form's first submit button.
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || !field.matches || !field.matches("[data-enter-clicks]")) { return; }
    event.preventDefault();
    document.getElementById(field.dataset.enterClicks).click();
  });

  // A plain (not htmx) form asks before it goes; htmx forms use hx-confirm.
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // When a part of the form (Preview) asks the server on its own, the errors of the form's last
  // answer no longer apply. The form's own request replaces it whole.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var form = elt.closest && elt.closest("[data-clear-errors]");
    if (!form || form === elt) { return; }
    form.querySelectorAll(".field-error, .form-error").forEach(function (e) { e.remove(); });
    form.querySelectorAll(".has-error").forEach(function (e) { e.classList.remove("has-error"); });
  });
})();
