// The studio's few lines of script (no build step).
//
// Live pages: <body ws-connect> opens one websocket (htmx ws extension); the server pushes the
// fragments the page renders and htmx swaps them in by id. While the socket is down the body
// loses its "live" class and unfinished cards poll instead (hx-trigger="offline-poll"); after a
// reconnect every live element reads its state once, since updates may have been missed.
// The pages carry no inline script or handlers (the Content-Security-Policy forbids them): what
// they do lives here and in forms.js, as listeners on the document.
(function () {
  var opened = false;
  var RETRIED_BY_EXTENSION = [1006, 1011, 1012, 1013];
  var REFUSED = 4403;
  // Back off between tries, but never past 5 s: a restarted studio is back within seconds.
  htmx.config.wsReconnectDelay = function (retryCount) {
    return Math.min(500 * Math.pow(2, retryCount), 5000) * (0.5 + Math.random() / 2);
  };

  document.addEventListener("htmx:wsOpen", function () {
    document.body.classList.add("live");
    if (opened) {
      document.querySelectorAll("[data-live-url]").forEach(function (el) {
        htmx.ajax("GET", el.dataset.liveUrl, {target: el, swap: "morph"});
      });
    }
    opened = true;
  });

  document.addEventListener("htmx:wsClose", function (event) {
    document.body.classList.remove("live");
    var code = event.detail.event.code;
    // The extension retries abnormal closes itself; a server that shut down cleanly (1001)
    // is retried here, so pages come back on their own after a restart.
    if (RETRIED_BY_EXTENSION.indexOf(code) < 0 && code !== REFUSED) {
      setTimeout(function () { event.detail.socketWrapper.reconnect(); }, 500 + Math.random() * 1500);
    }
  });

  // A live update may change what a job reports, never what the user is doing. Updates morph the
  // page (idiomorph) instead of replacing it, and leave alone what the user owns: an open editor
  // or a message their action caused (data-user-owned), a form they have started to fill in, and
  // the value of the field they are typing in.
  Idiomorph.defaults.ignoreActiveValue = true;
  function ownedByUser(node) {
    return node.nodeType === Node.ELEMENT_NODE &&
      (node.hasAttribute("data-user-owned") || node.hasAttribute("data-touched") ||
       // Rendered for this viewer alone: a live update, rendered for everyone, brings an empty one.
       (node.hasAttribute("data-per-viewer") && node.children.length > 0));
  }
  Idiomorph.defaults.callbacks.beforeNodeMorphed = function (oldNode) { return !ownedByUser(oldNode); };
  Idiomorph.defaults.callbacks.beforeNodeRemoved = function (node) { return !ownedByUser(node); };
  // Typing marks a form touched, and so does a choice (a select or checkbox fires only "change").
  ["input", "change"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var form = event.target.closest && event.target.closest("[data-live-url] form");
      if (form) { form.setAttribute("data-touched", ""); }
      // A choice outside any form (a row's checkbox bound to a form by its form= attribute).
      if (event.target.hasAttribute && event.target.hasAttribute("data-keeps-choice")) {
        event.target.setAttribute("data-touched", "");
      }
    });
  });

  // Escape in an inline editor (a rename) cancels it, as its Cancel link does.
  document.addEventListener("keydown", function (event) {
    var editor = event.key === "Escape" && event.target.closest && event.target.closest("[data-user-owned]");
    var cancel = editor && editor.querySelector("[data-cancel-edit]");
    if (cancel) {
      event.preventDefault();
      event.stopImmediatePropagation();
      cancel.click();
    }
  }, true);

  // A message the user's action caused stays until they dismiss it.
  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss-message]");
    if (dismiss) { dismiss.closest("[data-user-owned]").remove(); }
  });

  // What the server pushes is every fragment a page might show of a changed record; a page
  // keeps those it shows. A record of a kind the page lists but does not show yet (new, or moved
  // into its filters) makes it read its list again (its filters, sort and page come from the
  // address), at most once every few seconds for the same record, since a record the filters
  // leave out would otherwise ask for it on every update.
  var asked = {};
  var pending = {};
  function refreshList(list, id) {
    var now = Date.now();
    if ((asked[id] && now - asked[id] < 5000) || pending[list.id]) { return; }
    asked[id] = now;
    pending[list.id] = setTimeout(function () {
      delete pending[list.id];
      htmx.ajax("GET", window.location.pathname + window.location.search,
                {target: "#" + list.id, select: "#" + list.id, swap: "morph"});
    }, 300);
  }
  // A live update waits while a request the user sent from inside its element is under way:
  // swapping the element out would detach the request's source, and htmx then finds none of the
  // answer's targets (a Delete's toast would never show). Once the answer is in, a held removal
  // is done if the answer did not do it, and anything else reads the element's state once.
  var held = {};
  function sending(id) {
    var el = document.getElementById(id);
    return el && (el.classList.contains("htmx-request") || el.querySelector(".htmx-request"));
  }
  document.addEventListener("htmx:afterRequest", function () {
    Object.keys(held).forEach(function (id) {
      if (sending(id)) { return; }
      var removal = held[id], el = document.getElementById(id);
      delete held[id];
      if (!el) { return; }
      if (removal) { el.remove(); } else if (el.dataset.liveUrl) {
        htmx.ajax("GET", el.dataset.liveUrl, {target: el, swap: "morph"});
      }
    });
  });
  // An answer to the user's own request may carry out-of-band parts for what a live update has
  // removed meanwhile (a deleted card): those are dropped too, instead of failing to swap.
  htmx.defineExtension("live-lists", {
    transformResponse: function (text, xhr) {
      var holder = document.createElement("template");
      holder.innerHTML = text;
      var dropped = false;
      Array.prototype.slice.call(holder.content.children).forEach(function (fragment) {
        if (!xhr && fragment.id && sending(fragment.id)) {
          held[fragment.id] = held[fragment.id] || fragment.getAttribute("hx-swap-oob") === "delete";
          fragment.remove();
          dropped = true;
          return;
        }
        if (!fragment.id || document.getElementById(fragment.id)) { return; }
        var oob = fragment.getAttribute("hx-swap-oob");
        if (xhr && !(oob && oob.indexOf(":") < 0)) { return; }  // the answer itself, or a part aimed elsewhere
        if (!xhr) {
          document.querySelectorAll("[data-live-list]").forEach(function (list) {
            if (new RegExp(list.dataset.liveList).test(fragment.id)) { refreshList(list, fragment.id); }
          });
        }
        fragment.remove();
        dropped = true;
      });
      return dropped ? holder.innerHTML : text;
    }
  });

  // Unfinished cards poll once a second while the socket is down. A trigger filter
  // ("every 1s [...]") would need eval, which the Content-Security-Policy forbids. The event does
  // not bubble, so an element inside another polling one is not asked twice.
  setInterval(function () {
    if (document.body.classList.contains("live")) { return; }
    document.querySelectorAll('[hx-trigger="offline-poll"]').forEach(function (el) {
      el.dispatchEvent(new CustomEvent("offline-poll"));
    });
  }, 1000);

  // A modal closes from its close link or Cancel button, or a click on the backdrop around it.
  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-modal]");
    if (closer) {
      event.preventDefault();
      closer.closest(".modal-backdrop").remove();
    } else if (event.target.matches(".modal-backdrop")) {
      event.target.remove();
    }
  });

  // Escape closes whichever modal is open, wherever the focus is.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll(".modal-backdrop").forEach(function (modal) { modal.remove(); });
    }
  });

  // A file larger than the studio accepts is refused before it is sent, in the message the
  // page would give (the server answers such a body 413 from its length, with no page).
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches("input[type=file][data-max-bytes]")) { return; }
    var file = input.files[0], most = Number(input.dataset.maxBytes);
    input.setCustomValidity(file && file.size > most ?
      "The file is " + size(file.size) + "; the studio accepts at most " + size(most) + " per file." : "");
    input.reportValidity();
  });

  function size(bytes) {
    var units = [["GB", 1e9], ["MB", 1e6], ["KB", 1e3]];
    for (var i = 0; i < units.length; i++) {
      if (bytes >= units[i][1]) { return (bytes / units[i][1]).toFixed(1) + " " + units[i][0]; }
    }
    return bytes + " bytes";
  }

  // A toast with a close button goes when clicked.
  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (close) { close.closest(".toast-item").remove(); }
  });
})();
