"""Saved extraction settings. Field names follow the original tool's export format, so a file
exported there imports here unchanged (see templates_app/import_export.py)."""

from __future__ import annotations

import json

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce, Lower

from models_app.formatting import format_layers
from models_app.ml.vocabulary import (
    CONTEXT_TOKENS,
    DTYPE_CHOICES,
    MAX_BATCH,
    MAX_CONTEXT_TOKENS,
    MAX_TOP_K,
    hook_labels,
)
from models_app.models.owned import Owned


class ExtractionTemplate(Owned):
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    layer_indices = models.JSONField(default=list)
    hook_types = models.JSONField(default=list)
    max_samples = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the whole dataset")
    batch_size = models.PositiveIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH)]
    )
    # The forward pass runs at most this many samples at once (memory); batch_size is the step
    # of reading, writing and progress. Empty: the batch size.
    micro_batch_size = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH)]
    )
    context_length = models.PositiveIntegerField(default=128, validators=[MinValueValidator(1)])
    top_k_examples = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(MAX_TOP_K)]
    )
    # Tokens shown before / after the peak token of a top example.
    context_prefix_tokens = models.PositiveIntegerField(
        default=CONTEXT_TOKENS, validators=[MaxValueValidator(MAX_CONTEXT_TOKENS)]
    )
    context_suffix_tokens = models.PositiveIntegerField(
        default=CONTEXT_TOKENS, validators=[MaxValueValidator(MAX_CONTEXT_TOKENS)]
    )
    dtype = models.CharField(max_length=10, default="float16", choices=DTYPE_CHOICES)
    is_favorite = models.BooleanField(default=False, db_index=True)
    extra_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(Owned.Meta):
        ordering = ["-is_favorite", Lower("name")]
        constraints = [
            # Per owner: a private studio keeps each user's names apart (Owned.alike_for); a
            # shared one checks the whole studio before saving (forms.TemplateForm.clean_name).
            models.UniqueConstraint(
                Coalesce("owner", Value(0)),
                Lower("name"),
                name="unique_template_name_owner",
                violation_error_message="A template with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def layers_label(self) -> str:
        return format_layers(self.layer_indices)

    @property
    def hooks_label(self) -> str:
        return hook_labels(self.hook_types)

    @property
    def extra_metadata_text(self) -> str:
        return json.dumps(self.extra_metadata, indent=2, ensure_ascii=False)

    def extraction_settings(self) -> dict:
        """The settings under the names an Extraction record uses (layers, hooks, top_k), so
        applying a template to the extraction form is one dict update."""
        return {
            "layers": list(self.layer_indices),
            "hooks": list(self.hook_types),
            "max_samples": self.max_samples,
            "batch_size": self.batch_size,
            "micro_batch_size": self.micro_batch_size,
            "context_length": self.context_length,
            "top_k": self.top_k_examples,
            "context_prefix_tokens": self.context_prefix_tokens,
            "context_suffix_tokens": self.context_suffix_tokens,
            "dtype": self.dtype,
        }
