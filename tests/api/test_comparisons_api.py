"""/api/v1/extractions/{id}/comparisons and /api/v1/comparisons/{id}: what a script does with
comparisons (two extractions of the same files here: equal; the formats' figures are tested in
tests/comparisons)."""

from __future__ import annotations

import pytest

from models_app.models import Comparison
from tests.web.owned import extraction_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_script_compares_follows_and_reads_the_result(api, alice, completed):
    base, other = completed(user=alice), completed(user=alice)
    started = api.post(f"/extractions/{base.pk}/comparisons", {"others": [other.pk]})
    assert started.status_code == 202, started.json()
    body = api.get(f"/comparisons/{started.json()['id']}").json()
    assert (body["status"], body["base"], body["others"], body["owner"]) == (
        "completed",
        base.pk,
        [other.pk],
        "alice",
    )
    result = body["result"]
    assert result["base"] == base.pk and [o["id"] for o in result["others"]] == [other.pk]
    hooks = result["others"][0]["hooks"]
    assert [(h["layer"], h["hook"]) for h in hooks] == [
        (0, "residual"),
        (0, "mlp"),
        (1, "residual"),
        (1, "mlp"),
    ]
    assert all(h["equal"] and h["sqnr_db"] is None and h["relative_error"] == 0.0 for h in hooks)
    assert body["tokens_done"] == body["tokens_total"] == hooks[0]["tokens"] > 0
    assert [c["id"] for c in api.get(f"/extractions/{base.pk}/comparisons").json()] == [body["id"]]
    assert api.post(f"/comparisons/{body['id']}/cancel").status_code == 409  # it has ended
    assert api.delete(f"/comparisons/{body['id']}").status_code == 204
    assert not Comparison.objects.exists()


def test_a_refusal_says_why(api, alice, completed):
    base = completed(user=alice)
    missing = api.post(f"/extractions/{base.pk}/comparisons", {"others": [999]})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"field": "others", "message": "No extraction with id 999 to compare with."}
    ]
    running = extraction_of(alice, status="extracting")
    refused = api.post(f"/extractions/{base.pk}/comparisons", {"others": [running.pk]})
    assert refused.status_code == 422
    message = f"Extraction {running.pk} is not completed: only completed extractions compare."
    assert refused.json()["errors"] == [{"field": "", "message": message}]
    assert api.post("/extractions/999/comparisons", {"others": [base.pk]}).status_code == 404
    assert not Comparison.objects.exists()


def test_a_private_studio_hides_another_users_comparisons(api, staff_api, owner, completed, settings):
    base, other = completed(user=owner), completed(user=owner)
    comparison = staff_api.post(f"/extractions/{base.pk}/comparisons", {"others": [other.pk]}).json()["id"]
    settings.PRIVATE = True
    assert api.get(f"/comparisons/{comparison}").status_code == 404
    assert api.get(f"/extractions/{base.pk}/comparisons").status_code == 404
    assert api.delete(f"/comparisons/{comparison}").status_code == 404
    assert api.post(f"/extractions/{base.pk}/comparisons", {"others": [other.pk]}).status_code == 404
