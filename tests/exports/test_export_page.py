"""An extraction's exports on its page: started by the form (the job runs, as Django-Q2 runs jobs
in tests, synchronously), refused at the field at fault, listed with their files, downloaded one
by one or as one .tar, and deleted only by who may."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from models_app.models import ActivationExport
from tests.helpers import HTMX

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, extraction, **data):
    return client.post(reverse("models_app:export-start", args=[extraction.pk]), data, **HTMX)


def test_the_extraction_page_offers_an_export(owner_client, completed):
    record = completed()
    page = owner_client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()
    assert f'id="export-form-{record.pk}"' in page
    for key in ("layer_0_residual", "layer_0_mlp", "layer_1_residual", "layer_1_mlp"):
        assert f'type="checkbox" name="hooks" value="{key}"' in page


def test_it_exports_the_ticked_hooks_and_lists_the_files(owner_client, owner, completed):
    record = completed()
    response = start(owner_client, record, format="tokens", hooks=["layer_1_mlp"])
    export = ActivationExport.objects.get()
    assert response.status_code == 200 and export.status == "completed", export.error_message
    assert (export.owner, export.hooks, export.folder) == (
        owner,
        ["layer_1_mlp"],
        record.output_dir / "exports" / f"{export.pk}-tokens",
    )
    html = response.content.decode()
    assert f'id="export-{export.pk}"' in html and "Completed" in html
    names = [name for name, _size in export.files()]
    assert names == sorted(
        ["layer_1_mlp.npy", "manifest.json", "position.npy", "sample_index.npy", "token_ids.npy"]
    )
    for name in names:
        assert reverse("models_app:export-file", args=[export.pk, name]) in html
    mask = np.load(record.output_dir / "attention_mask.npy").astype(bool)
    flat = np.load(export.folder / "layer_1_mlp.npy")
    assert flat.tobytes() == np.load(record.output_dir / "layer_1_mlp.npy")[mask].tobytes()
    assert export.manifest["tokens"] == int(mask.sum()) and export.size_bytes > flat.nbytes


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"format": "tokens", "shuffle_seed": "3"}, "shuffle_seed", "applies to the saelens format only"),
        ({"format": "saelens", "context_size": "100000"}, "context_size", "not one row of 100000"),
        ({"format": "saelens", "hooks": ["layer_9_mlp"]}, "hooks", "No hook layer_9_mlp in this extraction"),
        ({"format": "npz"}, "format", "not one of the available choices"),
    ],
)
def test_a_refusal_shows_at_its_field_and_starts_nothing(owner_client, completed, data, field, message):
    record = completed()
    response = start(owner_client, record, **data)
    assert response.status_code == 422
    html = response.content.decode()
    error = html[html.index(f'id="error-export-{field}"') :]
    assert message in error[: error.index("</small>")]
    assert not ActivationExport.objects.exists()
    assert not (record.output_dir / "exports").exists()


def test_an_unfinished_extraction_cannot_be_exported(owner_client, completed):
    record = completed()
    record.status = "failed"
    record.save(update_fields=["status"])
    response = start(owner_client, record, format="tokens")
    assert (
        "has not completed (failed): only a completed extraction can be exported" in response.content.decode()
    )
    assert not ActivationExport.objects.exists()


def test_the_archive_is_the_whole_folder_streamed_as_a_tar(owner_client, completed):
    record = completed()
    start(owner_client, record, format="saelens", context_size="8", shuffle_seed="2")
    export = ActivationExport.objects.get()
    response = owner_client.get(reverse("models_app:export-archive", args=[export.pk]))
    assert response.streaming and response["Content-Type"] == "application/x-tar"
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    assert response["Content-Disposition"] == f'attachment; filename="{export.pk}-saelens.tar"'
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert members == {
        f"{export.pk}-saelens/{name}": (export.folder / name).read_bytes() for name, _ in export.files()
    }
    assert f"{export.pk}-saelens/dataset_info.json" in members


def test_one_file_downloads_and_no_other_name_does(owner_client, completed):
    record = completed()
    start(owner_client, record, format="tokens")
    export = ActivationExport.objects.get()
    response = owner_client.get(reverse("models_app:export-file", args=[export.pk, "token_ids.npy"]))
    assert b"".join(response.streaming_content) == (export.folder / "token_ids.npy").read_bytes()
    for name in ("metadata.json", "..", "missing.npy"):
        assert owner_client.get(reverse("models_app:export-file", args=[export.pk, name])).status_code == 404


def test_only_its_owner_and_staff_delete_it_and_its_folder_goes(completed, other_user, owner_client):
    record = completed(user=other_user)
    mine = Client()
    mine.force_login(other_user)
    start(mine, record, format="tokens")
    export = ActivationExport.objects.get()
    stranger = type(other_user).objects.create_user("stranger", password="pw-stranger-123")
    theirs = Client()
    theirs.force_login(stranger)
    refused = theirs.post(reverse("models_app:export-delete", args=[export.pk]), **HTMX)
    assert "Only other, who added it, and staff can change it." in refused.content.decode()
    assert export.folder.is_dir()
    deleted = owner_client.post(reverse("models_app:export-delete", args=[export.pk]), **HTMX)  # staff
    assert deleted.status_code == 200 and f'id="export-{export.pk}"' not in deleted.content.decode()
    assert not ActivationExport.objects.exists() and not export.folder.exists()
