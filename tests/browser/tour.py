"""A walk through every page and modal of the studio, for checks that must hold on each of them
(accessibility, narrow screens, requests that fail). `tour` goes from stop to stop and yields the
name of each once the page is in the state to check; what the page holds at each stop is set up
here, so every check sees the same studio."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from models_app.models import Dataset, LanguageModel
from templates_app.models import ExtractionTemplate


def furnish(owner, record) -> None:
    """Cards in every state a list shows, beside the ready model and completed extraction of
    `record`, and a saved template; `owner` may see the admin's every app."""
    owner.is_superuser = True
    owner.save()
    earlier = timezone.now() - timedelta(minutes=5)
    for status, error in (("queued", ""), ("error", "The repository does not exist."), ("cancelled", "")):
        LanguageModel.objects.create(
            name=f"{status} model",
            repo_id=f"org/{status}",
            quantization="q4",
            status=status,
            error_message=error,
            updated_at=earlier,
        )
    for status, error in (("error", "No text field 'body' in the file."), ("cancelled", "")):
        Dataset.objects.create(
            name=f"{status} dataset",
            source="hub",
            source_detail="data/corpus@main:*.parquet",
            file_format="parquet",
            status=status,
            error_message=error,
        )
    ExtractionTemplate.objects.create(
        name="sweep",
        description="Every layer's residual stream",
        layer_indices=[0, 1],
        hook_types=["residual", "mlp"],
    )


def running_download() -> None:
    """A download in progress, with a fresh heartbeat so that no one fails it before it shows."""
    now = timezone.now()
    LanguageModel.objects.create(
        name="downloading model",
        repo_id="org/downloading",
        quantization="q8",
        status="downloading",
        progress=42.0,
        bytes_downloaded=4_200_000,
        bytes_total=10_000_000,
        speed_bps=1_500_000,
        eta_seconds=4,
        phase_detail="model.safetensors",
        started_at=now,
        heartbeat_at=now,
    )


def sign_in(page, url: str, username: str = "owner", password: str = "pw-owner-123") -> None:
    if not page.url.endswith("/login/"):
        page.goto(f"{url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def visit(page, url: str, path: str, live: bool = True) -> None:
    page.goto(f"{url}{path}")
    if live:
        page.wait_for_selector("body.live")  # its websocket is open: what it shows is settled


def open_modal(page, card: str, button: str, modal: str) -> None:
    page.click(f"{card} a:has-text('{button}')")
    page.wait_for_selector(modal)  # shown: open, once a <dialog>


def tour(page, url: str, owner, record):
    """Walk the studio at `url` signed in as `owner`, yielding each stop's name."""
    furnish(owner, record)
    card = f"#model-{record.model.pk}"

    visit(page, url, "/login/", live=False)
    yield "login"
    running_download()
    sign_in(page, url)
    page.wait_for_selector("body.live #model-list .card.status-downloading")
    yield "models"

    if not page.is_visible("#download-form"):  # folded away on a narrow screen
        page.click("summary:has-text('Download a model')")
    page.fill("input[name=repo_id]", "tiny/gpt2")
    page.click("#download-form button:has-text('Preview')")
    page.wait_for_selector(".preview-card")
    yield "models: download preview"

    open_modal(page, card, "Architecture", "#architecture-modal")
    yield "models: architecture modal"
    page.keyboard.press("Escape")
    page.wait_for_selector("#architecture-modal", state="detached")

    open_modal(page, card, "Extract Activations", "#extract-modal")
    page.select_option("#extract-form select[name=dataset]", index=1)
    page.click("#extract-form button:has-text('Select All')")
    page.wait_for_selector("#estimate-disk")
    yield "models: extraction modal with its estimate"
    page.keyboard.press("Escape")
    page.wait_for_selector("#extract-modal", state="detached")

    visit(page, url, "/datasets/")
    yield "datasets"
    visit(page, url, "/extractions/")
    yield "extractions"
    visit(page, url, f"/extractions/{record.pk}/")
    page.wait_for_selector("#chart-mean-abs-residual svg rect.bar")
    yield "extraction: charts, files, top examples"
    visit(page, url, f"/extractions/{record.pk}/examples/?target=layer_1_residual&neuron=3")
    page.wait_for_selector("#example-list .tok.peak")
    yield "extraction: a neuron's top examples"

    visit(page, url, "/templates/")
    page.wait_for_selector("#import-form input[type=file]")
    yield "templates: list, form and import"

    visit(page, url, "/account/tokens/")
    page.fill("input[name=name]", "notebook")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    yield "API tokens"

    visit(page, url, "/admin/", live=False)
    page.wait_for_selector("#site-name")
    yield "admin index"
