"""Re-evaluate a saved run on any supported data: metrics.json, plots and report.html.

Evaluation reads only what a run folder contains (``config.json`` and ``model.keras``) and a data
set, so it never depends on the trainer's state. Evaluating the run's own data and test split
rewrites the run folder's files. Any other data or split goes into
``RUN_DIR/evaluations/<data folder>-<split>/``, so the run's own results are never replaced.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal


from fer_fairness.data.prepare import prepare_splits
from fer_fairness.evaluation import compute_metrics, predict_records, write_evaluation
from fer_fairness.export import load_run_model
from fer_fairness.io import write_json_atomic
from fer_fairness.runs import load_run_config

logger = logging.getLogger(__name__)

EvaluationSplit = Literal["train", "validation", "test", "all"]
EVALUATION_SPLITS: tuple[str, ...] = ("train", "validation", "test", "all")


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Output folder and metrics of one evaluation.

    Attributes:
        output_dir: Folder holding ``metrics.json``, ``plots/`` and ``report.html``.
        metrics: The metrics written to ``metrics.json``.
        num_images: Number of images evaluated.
    """

    output_dir: Path
    metrics: dict
    num_images: int


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    data_format: str | None = None,
    split: EvaluationSplit = "test",
) -> EvaluationResult:
    """Recompute the metrics, plots and report of a run, on its own data or on ``data``.

    Args:
        run_dir: Folder written by ``fer-fairness train``.
        data: Data folder to evaluate on; None uses the run's own data.
        data_format: Layout of ``data`` (``auto``, ``rafdb`` or ``manifest``).
        split: Split to evaluate, or ``all`` for every image of the data.
    """
    if split not in EVALUATION_SPLITS:
        raise ValueError(f"split={split!r} is invalid; expected one of {', '.join(EVALUATION_SPLITS)}")
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    model = load_run_model(run_dir)
    data_config = config.data
    if data is not None:
        data_config = dataclasses.replace(
            data_config,
            path=str(data),
            data_format=data_format or "auto",
            source="folder",
            augmented_path="",
            max_images=0,
        )
    prepared = prepare_splits(data_config, seed=config.training.seed)
    records = prepared.all_records if split == "all" else prepared.splits[split]
    if not records:
        raise ValueError(f"the {split} split of {data_config.path} is empty; choose another split")

    own_data = Path(data_config.path).resolve() == Path(config.data.path).resolve()
    output_dir = run_dir
    if not (own_data and split == "test"):
        output_dir = run_dir / "evaluations" / f"{Path(data_config.path).resolve().name}-{split}"
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            output_dir / "config.json",
            {**config.to_dict(), "evaluated_data": data_config.path, "evaluated_split": split},
        )

    predictions = predict_records(
        model, records, batch_size=config.training.batch_size, image_size=data_config.image_size
    )
    metrics = compute_metrics(predictions, config=config.evaluation)
    write_evaluation(output_dir, records, predictions, metrics)
    logger.info("evaluated %d images of %s (%s) into %s", len(records), data_config.path, split,
                output_dir)
    return EvaluationResult(output_dir, metrics, len(records))
