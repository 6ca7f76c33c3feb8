from __future__ import annotations

from django.core.management.base import CommandError

from models_app.models import LanguageModel


def add_model_id_argument(parser) -> None:
    parser.add_argument("model_id", type=int, help="the id printed first by list_models")


def get_model(model_id: int) -> LanguageModel:
    record = LanguageModel.objects.filter(pk=model_id).first()
    if record is None:
        raise CommandError(f"No model with id {model_id}.")
    return record
