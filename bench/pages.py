"""Page latency with a large history: the Models list, Datasets, Extractions, Templates and the
admin's lists with 10,000 models and 10,000 extractions, on SQLite and on PostgreSQL.

    .venv/bin/python bench/pages.py                        # both databases; the table in bench/README.md
    .venv/bin/python bench/pages.py --databases sqlite --requests 50

For each database: a throwaway data directory (and, for PostgreSQL, a scratch
database on MISTUDIO_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test, dropped at
the end), `migrate`, then 10,000 ready models, 50 datasets, 10,000 completed extractions with
statistics in their metadata and 200 templates written with bulk_create (in one process); then,
in a fresh process like a web process, a staff user signed in through Django's test client (the
figure is the studio's own time, no network).
Each page is requested --requests times after two warm-up requests; p50 and p95 in ms.
Target: p95 under 100 ms for every GET.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = {
    "Models": "/",
    "Models, page 50": "/?page=50",
    "Models, search": "/?q=model-77",
    "Datasets": "/datasets/",
    "Extractions": "/extractions/",
    "Extractions, filtered": "/extractions/?status=completed&hook=mlp&sort=size",
    "Extraction page": "/extractions/{extraction}/",
    "Templates": "/templates/",
    "Admin: models": "/admin/models_app/languagemodel/",
    "Admin: extractions": "/admin/models_app/extraction/",
    "Admin: templates": "/admin/templates_app/extractiontemplate/",
}


def populate(models: int, extractions: int) -> int:
    from django.contrib.auth import get_user_model

    from models_app.models import Dataset, Extraction, LanguageModel
    from templates_app.models import ExtractionTemplate

    rng = random.Random(0)
    statistics_ = {
        f"layer_{layer}_{hook}": {
            "layer": layer,
            "hook": hook,
            "module": f"model.layers.{layer}.{hook}",
            "shape": [1000, 128, 2048],
            "file": f"layer_{layer}_{hook}.npy",
            "file_size": 524288128,
            "mean": 0.01,
            "mean_abs": 0.4,
            "std": 0.6,
            "min": -9.0,
            "max": 11.0,
            "sparsity_percent": 2.0,
            "l2_norm_mean": 20.0,
            "tokens": 100000,
            "histogram": {
                "edges": [i / 4 for i in range(41)],
                "counts": [100] * 40,
                "below": 0,
                "above": 0,
                "nonfinite": 0,
            },
        }
        for layer in (0, 5, 11)
        for hook in ("residual", "mlp", "attention")
    }
    LanguageModel.objects.bulk_create(
        [
            LanguageModel(
                name=f"model-{i}",
                repo_id=f"org/model-{i}",
                status="ready",
                quantization="fp16",
                architecture=rng.choice(["llama", "gpt2", "qwen2"]),
                params_count=rng.randint(10**6, 10**10),
                disk_size_bytes=rng.randint(10**6, 10**10),
                architecture_config={"num_hidden_layers": 12, "hidden_size": 2048},
            )
            for i in range(models)
        ],
        batch_size=1000,
    )
    Dataset.objects.bulk_create(
        [Dataset(name=f"dataset-{i}", status="ready", num_samples=1000) for i in range(50)]
    )
    model_ids = list(LanguageModel.objects.values_list("pk", flat=True))
    dataset_ids = list(Dataset.objects.values_list("pk", flat=True))
    Extraction.objects.bulk_create(
        [
            Extraction(
                model_id=rng.choice(model_ids),
                dataset_id=rng.choice(dataset_ids),
                layers=[0, 5, 11],
                hooks=rng.choice([["residual"], ["mlp"], ["residual", "mlp", "attention"]]),
                status="completed",
                samples_total=1000,
                samples_done=1000,
                tokens_per_second=rng.uniform(100, 10000),
                size_bytes=rng.randint(10**6, 10**10),
                metadata={"statistics": statistics_, "files": ["metadata.json"], "samples": 1000},
            )
            for _ in range(extractions)
        ],
        batch_size=500,
    )
    ExtractionTemplate.objects.bulk_create(
        [
            ExtractionTemplate(name=f"template-{i}", layer_indices=[0, 5], hook_types=["mlp"])
            for i in range(200)
        ]
    )
    get_user_model().objects.create_user("bench", password="bench", is_staff=True, is_superuser=True)
    return Extraction.objects.order_by("pk").values_list("pk", flat=True).first()


def fill(models: int, extractions: int) -> int:
    """In its own process: the measured process then holds what a web process holds, not the
    objects of the fill (their garbage collections would be timed as page latency)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    extraction = populate(models, extractions)
    with connection.cursor() as cursor:  # as a database in use for a while: statistics known, and
        # no autovacuum of the fresh rows running during the measurement
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return extraction


def measure(requests: int, extraction: int) -> dict[str, list[float]]:
    import django

    django.setup()
    from django.test import Client

    import mistudio_site.asgi  # noqa: F401  (the web process's start, as daphne does it)

    client = Client(HTTP_HOST="127.0.0.1")
    client.login(username="bench", password="bench")
    timings = {}
    for name, path in PAGES.items():
        url = path.format(extraction=extraction)
        for _ in range(2):
            assert client.get(url).status_code == 200, url
        samples = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings[name] = samples
    return timings


def child(args) -> None:
    if args.child == "fill":
        print(json.dumps(fill(args.models, args.extractions)))
    else:
        print(json.dumps(measure(args.requests, args.extraction)))


def _run_child(env: dict, *arguments: str):
    result = subprocess.run(
        [sys.executable, __file__, *arguments], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_on(database: str, args) -> dict[str, list[float]]:
    server = os.environ.get("MISTUDIO_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    scratch_name = f"mistudio_pages_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mistudio-pages-") as data:
        env = {**os.environ, "MISTUDIO_DATA_DIR": data, "DJANGO_SETTINGS_MODULE": "mistudio_site.settings"}
        env.pop("REDIS_URL", None)
        env.pop("DATABASE_URL", None)
        if database == "postgresql":
            import psycopg

            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{scratch_name}"')
            env["DATABASE_URL"] = server.rsplit("/", 1)[0] + "/" + scratch_name
        try:
            extraction = _run_child(
                env, "--child", "fill", "--models", str(args.models), "--extractions", str(args.extractions)
            )
            return _run_child(
                env, "--child", "measure", "--requests", str(args.requests), "--extraction", str(extraction)
            )
        finally:
            if database == "postgresql":
                with psycopg.connect(server, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{scratch_name}" WITH (FORCE)')


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--extractions", type=int, default=10_000)
    parser.add_argument("--child", choices=["fill", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--extraction", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {database: run_on(database, args) for database in args.databases}
    print(f"{args.models:,} models, {args.extractions:,} extractions; {args.requests} GETs per page (ms)\n")
    print("| page | " + " | ".join(f"{d} p50 | {d} p95" for d in results) + " |")
    print("|---|" + "---|---|" * len(results))
    worst = 0.0
    for page in PAGES:
        cells = []
        for timings in results.values():
            worst = max(worst, p95(timings[page]))
            cells += [f"{statistics.median(timings[page]):.1f}", f"{p95(timings[page]):.1f}"]
        print(f"| {page} | " + " | ".join(cells) + " |")
    print(f"\nWorst p95: {worst:.1f} ms (target: under 100 ms)")
    sys.exit(0 if worst < 100 else 1)


if __name__ == "__main__":
    main()
