"""An extraction's page: provenance, statistics equal to metadata.json, charts, files, delete."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from models_app.models import Extraction
from tests.helpers import HTMX

# Slow: every test first downloads a model and adds a dataset by their real jobs (`ready`) and extracts.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def page_of(client, record) -> str:
    return client.get(reverse("models_app:extraction", args=[record.pk])).content.decode()


def test_its_statistics_are_those_of_metadata_json(owner_client, extract, settings):
    record = extract()
    meta = json.loads((settings.ACTIVATIONS_DIR / str(record.pk) / "metadata.json").read_text())
    html = page_of(owner_client, record)
    assert str(settings.ACTIVATIONS_DIR) not in html  # never the server's absolute path
    for key, stats in meta["statistics"].items():
        row = html[html.index(f'id="stats-{key}"') :]
        row = row[: row.index("</tr>")]
        assert " × ".join(str(n) for n in stats["shape"]) in row
        for field, places in (("mean", 4), ("mean_abs", 4), ("std", 4), ("min", 3), ("max", 3)):
            assert f"{stats[field]:.{places}f}" in row, field
        assert f"{stats['sparsity_percent']:.1f}%" in row
    provenance = html[html.index('id="provenance"') :]
    assert meta["model"]["repo_id"] == "tiny/llama" and meta["model"]["commit_sha"] in provenance
    assert "corpus" in provenance and "FP16" in provenance


def test_its_charts_are_svg_with_one_bar_per_layer(owner_client, extract):
    record = extract(layers=[0, 1], hooks=["residual", "mlp"])
    html = page_of(owner_client, record)
    for hook in ("residual", "mlp"):
        for chart in (f"chart-mean-abs-{hook}", f"chart-sparsity-{hook}"):
            figure = html[html.index(f'id="{chart}"') :]
            figure = figure[: figure.index("</figure>")]
            assert "<svg" in figure and figure.count('class="bar"') == 2, chart
            assert ">L0<" in figure and ">L1<" in figure
    histogram = html[html.index('id="histogram-layer_1_mlp"') :]
    histogram = histogram[: histogram.index("</figure>")]
    assert histogram.count('class="bin"') == len(record.statistics["layer_1_mlp"]["histogram"]["counts"])


def test_its_files_download_with_the_right_bytes(owner_client, extract, settings):
    record = extract()
    html = page_of(owner_client, record)
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    links = re.findall(rf'href="(/extractions/{record.pk}/files/[^"]+)"', html)
    assert len(links) == len(record.metadata["files"])
    response = owner_client.get(
        reverse("models_app:extraction-file", args=[record.pk, "layer_0_residual.npy"])
    )
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == (folder / "layer_0_residual.npy").read_bytes()
    assert 'mmap_mode="r"' in html and f'folder = "activations/{record.pk}"' in html


def test_downloads_refuse_other_paths_and_anonymous_users(owner_client, client, extract, settings):
    record = extract()
    (settings.ACTIVATIONS_DIR / "secret.txt").write_text("not yours")
    (settings.ACTIVATIONS_DIR / str(record.pk) / "extra.bin").write_text("not listed")
    for name in ("..%2Fsecret.txt", "%2E%2E%2Fsecret.txt", "extra.bin", "metadata.json%00"):
        response = owner_client.get(f"/extractions/{record.pk}/files/{name}")
        assert response.status_code == 404, name
    response = owner_client.get(f"/extractions/{record.pk}/files/../secret.txt")
    assert response.status_code == 404 or b"not yours" not in response.content
    anonymous = client.__class__().get(
        reverse("models_app:extraction-file", args=[record.pk, "metadata.json"])
    )
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_a_listed_file_that_is_a_link_out_of_the_folder_is_refused(owner_client, extract, settings):
    record = extract()
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    outside = settings.ACTIVATIONS_DIR.parent / "outside.npy"
    outside.write_text("outside")
    (folder / "tokens.npy").unlink()
    (folder / "tokens.npy").symlink_to(outside)
    response = owner_client.get(reverse("models_app:extraction-file", args=[record.pk, "tokens.npy"]))
    assert response.status_code == 404


def test_delete_says_which_files_go_and_frees_them(owner_client, extract, settings):
    record = extract()
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    html = page_of(owner_client, record)
    confirm = re.search(r'id="delete-extraction"', html) and re.search(
        r'hx-confirm="(Delete extraction[^"]+)"', html
    )
    assert confirm and "layer_0_residual.npy" in confirm.group(1) and "files (" in confirm.group(1)
    response = owner_client.post(reverse("models_app:extraction-delete", args=[record.pk]), **HTMX)
    assert response["HX-Redirect"] == reverse("models_app:extractions")
    assert not folder.exists() and not Extraction.objects.exists()
    listing = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert f"Deleted extraction {record.pk} and freed" in listing


def test_a_running_extraction_cannot_be_deleted(owner_client, ready):
    model, dataset = ready
    running = Extraction.objects.create(
        model=model, dataset=dataset, layers=[0], hooks=["mlp"], status="extracting"
    )
    html = owner_client.post(
        reverse("models_app:extraction-delete", args=[running.pk]), **HTMX
    ).content.decode()
    assert "is running: cancel it first" in html and Extraction.objects.filter(pk=running.pk).exists()


def test_a_record_whose_files_are_gone_is_marked(owner_client, extract, settings):
    record = extract()
    (settings.ACTIVATIONS_DIR / str(record.pk) / "layer_1_mlp.npy").unlink()
    html = page_of(owner_client, record)
    assert (
        'id="missing-files"' in html and "layer_1_mlp.npy" in html[html.index('id="missing-files"') :][:300]
    )
    listing = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert "files missing" in listing


def test_a_folder_found_on_disk_is_listed_and_imported(owner_client, extract, ready, settings):
    record = extract()
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    meta = json.loads((folder / "metadata.json").read_text())
    Extraction.objects.filter(pk=record.pk).delete()  # the record is lost, the files stay
    listing = owner_client.get(reverse("models_app:extractions")).content.decode()
    assert 'id="found-folders"' in listing and f'value="{record.pk}"' in listing
    model, dataset = ready
    response = owner_client.post(
        reverse("models_app:extraction-import"),
        {"folder": str(record.pk), "model": model.pk, "dataset": dataset.pk},
    )
    imported = Extraction.objects.get()
    assert response["Location"] == reverse("models_app:extraction", args=[imported.pk])
    assert imported.status == "completed" and imported.statistics == meta["statistics"]
    assert imported.layers == [0, 1] and imported.hooks == ["residual", "mlp"] and imported.size_bytes > 0
    assert (settings.ACTIVATIONS_DIR / str(imported.pk) / "layer_0_residual.npy").exists()
    assert 'id="found-folders"' not in owner_client.get(reverse("models_app:extractions")).content.decode()
    assert not imported.missing_files


def test_a_new_extraction_never_mixes_its_files_with_a_found_folder(owner_client, extract, settings):
    first = extract()
    Extraction.objects.filter(pk=first.pk).delete()
    # SQLite may reuse the id of the deleted row: either way the found folder must survive intact.
    second = extract()
    found = [p for p in settings.ACTIVATIONS_DIR.iterdir() if p.name != str(second.pk)]
    assert len(found) == 1 and (found[0] / "metadata.json").exists()
    assert json.loads((found[0] / "metadata.json").read_text())["extraction_id"] == first.pk


def test_a_folder_that_is_a_link_out_of_the_data_directory_is_refused(
    owner_client, extract, settings, tmp_path
):
    import shutil

    record = extract()
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere)
    response = owner_client.get(reverse("models_app:extraction-file", args=[record.pk, "metadata.json"]))
    assert response.status_code == 404


def test_an_imported_folder_named_like_the_new_record_is_imported_in_place(
    owner_client, extract, ready, settings
):
    """A restored data directory on an empty database: folder N becomes record N."""
    record = extract()
    folder = settings.ACTIVATIONS_DIR / str(record.pk)
    Extraction.objects.filter(pk=record.pk).delete()
    next_pk = record.pk + 1  # SQLite never reuses an id: the next record is this one
    folder.rename(settings.ACTIVATIONS_DIR / str(next_pk))
    model, dataset = ready
    owner_client.post(
        reverse("models_app:extraction-import"),
        {"folder": str(next_pk), "model": model.pk, "dataset": dataset.pk},
    )
    imported = Extraction.objects.get()
    assert imported.pk == next_pk and not imported.missing_files
    assert sorted(p.name for p in settings.ACTIVATIONS_DIR.iterdir()) == [str(next_pk)]
    assert imported.duration is not None  # from the timings in metadata.json
