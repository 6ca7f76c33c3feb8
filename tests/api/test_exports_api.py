"""/api/v1/extractions/{id}/exports and /api/v1/exports/{id}: what a script does with exports."""

from __future__ import annotations

import io
import tarfile

import pytest

from models_app.models import ActivationExport

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_script_exports_follows_and_downloads(api, alice, completed):
    record = completed(user=alice)
    started = api.post(f"/extractions/{record.pk}/exports", {"format": "saelens", "context_size": 8})
    assert started.status_code == 202, started.json()
    body = api.get(f"/exports/{started.json()['id']}").json()
    assert (body["status"], body["format"], body["extraction"], body["owner"]) == (
        "completed",
        "saelens",
        record.pk,
        "alice",
    )
    assert body["manifest"]["context_size"] == 8 and body["tokens_done"] == body["manifest"]["tokens"]
    assert [e["id"] for e in api.get(f"/extractions/{record.pk}/exports").json()] == [body["id"]]
    manifest = next(f for f in body["files"] if f["name"] == "manifest.json")
    assert api.client.get(manifest["url"], **api.headers).status_code == 200
    archive = api.client.get(body["archive_url"], **api.headers)
    with tarfile.open(fileobj=io.BytesIO(b"".join(archive.streaming_content))) as tar:
        assert sorted(m.name.split("/", 1)[1] for m in tar.getmembers()) == sorted(
            f["name"] for f in body["files"]
        )
    assert api.post(f"/exports/{body['id']}/cancel").status_code == 409  # it has ended
    deleted = api.delete(f"/exports/{body['id']}")
    assert deleted.status_code == 200 and deleted.json()["freed_bytes"] == body["size_bytes"]
    assert not ActivationExport.objects.exists()


def test_a_refusal_names_its_field(api, alice, completed):
    record = completed(user=alice)
    response = api.post(f"/extractions/{record.pk}/exports", {"format": "tokens", "shuffle_seed": 1})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "shuffle_seed", "message": "This applies to the saelens format only."}
    ]
    assert api.post("/extractions/999/exports", {"format": "tokens"}).status_code == 404


def test_a_private_studio_hides_another_users_exports(api, staff_api, owner, completed, settings):
    record = completed(user=owner)
    export_id = staff_api.post(f"/extractions/{record.pk}/exports", {"format": "tokens"}).json()["id"]
    settings.PRIVATE = True
    assert api.get(f"/exports/{export_id}").status_code == 404
    assert api.get(f"/extractions/{record.pk}/exports").status_code == 404
    assert api.delete(f"/exports/{export_id}").status_code == 404
