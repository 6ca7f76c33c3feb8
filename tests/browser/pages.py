"""Browser pages for the tests: one signed in as the `owner` fixture's user, and a script that
makes a page report what its Content-Security-Policy refused."""

from __future__ import annotations

# Runs before any script of every document: a refusal by the policy, and htmx being asked to
# eval (which it refuses itself under this configuration), are reported to the test through
# `window.reportProblem` (the test exposes it).
WATCH = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.reportProblem("refused by " + e.effectiveDirective + ": " + (e.blockedURI || "inline")
                       + " at " + e.sourceFile + ":" + e.lineNumber + " " + e.sample);
});
["htmx:evalDisallowedError", "htmx:syntax:error"].forEach(function (name) {
  document.addEventListener(name, function () { window.reportProblem(name + " on " + location.pathname); });
});
"""


def signed_in_page(browser, url: str):
    """A new browser context signed in as the `owner` fixture's user at the studio at `url`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "pw-owner-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page
