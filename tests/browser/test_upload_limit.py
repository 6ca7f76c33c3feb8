"""The upload form refuses a file over the studio's limit in the browser, before sending it:
the server would answer such a body 413 from its length, with no page to show why."""

from __future__ import annotations

import pytest

from models_app.models import Dataset

# Slow: Chromium.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_it_refuses_a_file_over_the_limit_before_sending_it(page, live_server, tmp_path, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    big = tmp_path / "big.txt"
    big.write_text("a sample line\n" * 200)
    page.goto(f"{live_server.url}/datasets/")
    requests = []
    page.on("request", lambda request: requests.append(request.url) if request.method == "POST" else None)
    page.set_input_files("#upload-form input[type=file]", str(big))
    page.click("#upload-form button[type=submit]")
    message = page.eval_on_selector("#upload-form input[type=file]", "input => input.validationMessage")
    assert message == "The file is 2.8 KB; the studio accepts at most 1.0 KB per file."
    assert requests == [] and not Dataset.objects.exists()
