"""Two identical downloads submitted at once: the second gets a message, not a server error."""

from __future__ import annotations

import pytest

from models_app.ml import hub
from models_app.models import LanguageModel
from models_app.services import downloads

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_second_of_two_identical_downloads_is_told_it_is_already_there(hub_server, settings):
    pre = hub.preflight("tiny/llama", endpoint=hub_server.endpoint)
    first = downloads.create_download(pre, "fp16", None, queue=False)
    # Both forms passed their duplicate check before either record existed: the database decides.
    with pytest.raises(downloads.AlreadyInStudio, match="Already downloading: tiny/llama@main in FP16"):
        downloads.create_download(pre, "fp16", None, queue=False)
    assert list(LanguageModel.objects.values_list("pk", flat=True)) == [first.pk]
