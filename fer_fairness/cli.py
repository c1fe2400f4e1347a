"""The ``fer-fairness`` command line.

Each sub-command has one ``_add_<name>_parser`` function that declares its flags and one
``_run_<name>`` function that calls the library. Only this module configures logging and writes
to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fer_fairness.errors import TrainingFailure

# TensorFlow's C++ start-up messages (oneDNN, CPU features) drown the command's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("fer_fairness")


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-fairness",
        description="Fair facial emotion recognition: multi-task fine-tuning and fairness reports.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in _PARSERS:
        add_parser(subparsers)
    return parser


def _parse_loss_weights(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        head, separator, value = item.partition("=")
        try:
            weights[head.strip()] = float(value)
        except ValueError:
            separator = ""
        if not separator:
            raise argparse.ArgumentTypeError(
                f"invalid loss weight {item!r}; expected HEAD=WEIGHT pairs such as "
                "emotion=1,gender=0.5,age=0.5"
            )
    return weights


def _parse_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


# Metrics printed after training and evaluation, in this order.
HEADLINE_KEYS: tuple[str, ...] = (
    "overall_accuracy",
    "balanced_accuracy",
    "emotion_fairness",
    "gender_fairness",
    "age_fairness",
    "race_fairness",
    "gender_accuracy",
    "age_accuracy",
)

# Training flags and the configuration fields they override.
TRAIN_OVERRIDES: dict[str, str] = {
    "data": "data.path",
    "data_format": "data.data_format",
    "bad_images": "data.bad_images",
    "max_images": "data.max_images",
    "source": "data.source",
    "augmented": "data.augmented_path",
    "sampling": "data.sampling",
    "group_by": "data.group_by",
    "random_augmentation": "data.random_augmentation",
    "trunk": "model.trunk",
    "trunk_classes": "model.trunk_classes",
    "heads": "model.heads",
    "batch_size": "training.batch_size",
    "heads_epochs": "training.heads_epochs",
    "heads_learning_rate": "training.heads_learning_rate",
    "finetune_epochs": "training.finetune_epochs",
    "finetune_learning_rate": "training.finetune_learning_rate",
    "patience": "training.early_stopping_patience",
    "loss_weights": "training.loss_weights",
    "seed": "training.seed",
    "deterministic": "training.deterministic",
    "precision": "training.precision",
    "cache_features": "training.cache_features",
    "strategy": "training.strategy",
    "selection": "training.selection",
    "fairness_floor": "training.fairness_floor",
    "fairness_floor_attribute": "training.fairness_floor_attribute",
    "min_group_size": "evaluation.min_group_size",
    "bootstrap": "evaluation.n_bootstrap",
    "output": "output_dir",
    "name": "name",
}


def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune the trunk with emotion, gender and age heads, then evaluate and export",
        description="Two-phase multi-task fine-tuning. Flags override the TOML configuration.",
    )
    parser.add_argument("--phase", choices=("heads", "finetune", "all"), default="all",
                        help="heads: phase 1 only; finetune: phase 2 from --from-run; all: both")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--data", help="data folder: RAF-DB basic (or its parent) or a folder "
                        "with labels.csv")
    parser.add_argument("--data-format", choices=("auto", "rafdb", "manifest"),
                        help="layout of --data (default: detected from its content)")
    parser.add_argument("--bad-images", choices=("stop", "skip"),
                        help="unreadable images: stop before training, or skip and list them")
    parser.add_argument("--max-images", type=int, help="keep at most N images per split")
    parser.add_argument("--source", choices=("folder", "tfds"),
                        help="read --data as a data folder, or as a prepared TFDS data set")
    parser.add_argument("--augmented",
                        help="manifest folder written by fer-fairness augment; its faces join "
                        "the train split only")
    parser.add_argument("--sampling", choices=("none", "uniform", "inverse_frequency", "given"),
                        help="group-balanced sampling of training batches (default none)")
    parser.add_argument("--group-by", type=_parse_names,
                        help="attributes whose groups balanced sampling evens out, e.g. gender,age")
    parser.add_argument("--random-augmentation", action="store_true", default=None,
                        help="random flips, brightness and contrast on training batches")
    parser.add_argument("--trunk", help="'ferplus' (cached FER+ model) or an .onnx/.keras file")
    parser.add_argument("--trunk-classes", type=_parse_names,
                        help="the trunk's logit order as comma-separated emotion names")
    parser.add_argument("--heads", type=_parse_names,
                        help="comma-separated heads, e.g. emotion,gender,age,race")
    parser.add_argument("--output", help="folder that receives the run folder (default: runs)")
    parser.add_argument("--name", help="run folder name (default: data folder name and time)")
    parser.add_argument("--seed", type=int, help="seed for splits, shuffling and initialisation")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="enable TensorFlow op determinism: identical results on a rerun")
    parser.add_argument("--batch-size", type=int,
                        help="images per training step and replica (see --strategy)")
    parser.add_argument("--precision",
                        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                        help="dtype policy of the trunk in training; auto: mixed_float16 on a "
                        "GPU, mixed_bfloat16 on a CPU with bfloat16 instructions, else float32. "
                        "The saved and exported model is float32")
    parser.add_argument("--cache-features", choices=("auto", "memory", "disk", "off"),
                        help="phase 1 computes the trunk's features once per image and trains "
                        "the heads on them, kept in memory or on disk; auto: memory unless "
                        "--random-augmentation, off: run the trunk on every batch")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multi_worker_mirrored"),
                        help="tf.distribute strategy: one device, all GPUs of this machine, or "
                        "several hosts set up by TF_CONFIG; the global batch is --batch-size "
                        "times the replicas, and the learning rates scale the same way")
    parser.add_argument("--heads-epochs", type=int, help="maximum epochs of phase 1")
    parser.add_argument("--heads-learning-rate", type=float, help="learning rate of phase 1")
    parser.add_argument("--finetune-epochs", type=int, help="maximum epochs of phase 2")
    parser.add_argument("--finetune-learning-rate", type=float, help="learning rate of phase 2")
    parser.add_argument("--patience", type=int,
                        help="phase-2 epochs without a better validation emotion accuracy")
    _add_selection_flags(parser)
    parser.add_argument("--loss-weights", type=_parse_loss_weights,
                        help="per-head loss weights, e.g. emotion=1,gender=0.5,age=0.5")
    parser.add_argument("--min-group-size", type=int,
                        help="groups with fewer test images are flagged and left out of the "
                        "fairness ratios (default 30)")
    parser.add_argument("--bootstrap", type=int,
                        help="bootstrap resamples for the confidence intervals; 0 disables them")
    parser.add_argument("--from-run", type=Path,
                        help="run folder whose phase-1 checkpoint --phase finetune starts from")
    parser.add_argument("--smoke", action="store_true",
                        help="shrink everything for a quick check: 1 epoch per phase, 48 "
                        "images per split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run folder of the same name instead of renaming")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its last finished epoch, with "
                        "the run's own config.json (no other training flags)")
    parser.set_defaults(handler=_run_train)


def _add_selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--selection", choices=("emotion_accuracy", "accuracy_with_fairness_floor"),
                        help="best-epoch criterion of the checkpoints and early stopping: the "
                        "validation emotion accuracy, or the most accurate epoch whose "
                        "validation fairness ratio reaches --fairness-floor")
    parser.add_argument("--fairness-floor", type=float,
                        help="minimum validation fairness ratio, 0 to 1, of "
                        "accuracy_with_fairness_floor (default 0.8)")
    parser.add_argument("--fairness-floor-attribute", choices=("gender", "age", "race", "emotion"),
                        help="attribute whose fairness ratio the floor applies to (default gender)")


def _default_data_path() -> str:
    from fer_fairness.data.synthetic import ensure_synthetic, unbiased

    folder = ensure_synthetic(unbiased())
    logger.info("no data folder given; using the built-in synthetic data set in %s "
                "(results on synthetic faces say nothing about real faces)", folder)
    return str(folder)


def _resolve_train_config(args: argparse.Namespace):
    from fer_fairness import config as config_lib

    base = config_lib.load_config(args.config) if args.config else config_lib.RunConfig()
    changes = {field: getattr(args, flag) for flag, field in TRAIN_OVERRIDES.items()}
    if args.loss_weights:
        changes["training.loss_weights"] = {**base.training.loss_weights, **args.loss_weights}
    resolved = config_lib.override(base, changes)
    if not resolved.data.path:
        from fer_fairness.runs import default_run_name

        # The synthetic folder is named by a hash, so the run gets a readable name instead.
        name = resolved.name or default_run_name("synthetic")
        resolved = config_lib.override(
            resolved, {"data.path": _default_data_path(), "name": name}
        )
    # config.json keeps absolute paths, so evaluate and resume work from any folder.
    resolved = config_lib.override(
        resolved, {"data.path": str(Path(resolved.data.path).resolve())}
    )
    return config_lib.smoke_config(resolved) if args.smoke else resolved


def _run_train(args: argparse.Namespace) -> int:
    from fer_fairness.workflow import resume, train

    if args.resume:
        extra_flags = [f"--{flag.replace('_', '-')}" for flag in (*TRAIN_OVERRIDES, "config", "from_run")
                       if getattr(args, flag) is not None]
        if extra_flags or args.smoke or args.overwrite or args.phase != "all":
            raise CommandError(
                f"--resume uses the run's own config.json; drop the other flags "
                f"({', '.join(extra_flags) or '--phase, --smoke or --overwrite'})"
            )
        result = resume(args.resume)
    else:
        config = _resolve_train_config(args)
        result = train(config, phase=args.phase, from_run=args.from_run, overwrite=args.overwrite)
    metrics, zero_shot = result.metrics, result.zero_shot_metrics
    print(f"run folder: {result.run_dir}")
    print(f"{'metric':<22}{'zero-shot':>12}{'trained':>12}")
    for key in HEADLINE_KEYS:
        print(f"{key:<22}{_format_value(zero_shot.get(key)):>12}{_format_value(metrics.get(key)):>12}")
    return 0


def _add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="recompute metrics.json, the plots and report.html of a run",
        description="Evaluate a run's model.keras on its own data or on another data folder. "
        "Other data or splits are written to RUN_DIR/evaluations/<data>-<split>/.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="folder written by train")
    parser.add_argument("--data", help="data folder to evaluate on (default: the run's data)")
    parser.add_argument("--data-format", choices=("auto", "rafdb", "manifest"),
                        help="layout of --data (default: detected from its content)")
    parser.add_argument("--split", choices=("train", "validation", "test", "all"),
                        default="test", help="split to evaluate (default: test)")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from fer_fairness.reevaluate import evaluate_run

    result = evaluate_run(
        args.run_dir, data=args.data, data_format=args.data_format, split=args.split
    )
    print(f"evaluated {result.num_images} images; report: {result.output_dir / 'report.html'}")
    _print_headline(result.metrics)
    return 0


def _print_headline(metrics: dict) -> None:
    intervals = metrics.get("confidence_intervals") or {}
    print(f"{'metric':<22}{'value':>10}  95% interval")
    for key in HEADLINE_KEYS:
        bounds = intervals.get(key)
        interval = f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else "n/a"
        print(f"{key:<22}{_format_value(metrics.get(key)):>10}  {interval}")


def _format_value(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _add_convert_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an ONNX image classifier into a Keras .keras file",
        description="Convert an ONNX image classifier into a Keras model of built-in layers, "
        "print its layers with their output shapes, and save it as a .keras file.",
    )
    parser.add_argument("model", type=Path, help="the .onnx file to convert")
    parser.add_argument("--output", "-o", type=Path, required=True,
                        help="path of the .keras file to write")
    parser.add_argument("--data-format", choices=("channels_last", "channels_first"),
                        default="channels_last",
                        help="layout of the Keras input: (batch, height, width, channels) or "
                        "(batch, channels, height, width); default: %(default)s")
    parser.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    if args.output.suffix != ".keras":
        raise CommandError(f"--output={args.output} must end in .keras")
    from fer_fairness.convert import convert_onnx  # Imports TensorFlow, so only when needed.

    model = convert_onnx(args.model, data_format=args.data_format)
    model.summary(line_length=110, print_fn=lambda line, **_: print(line))
    features = model.get_layer("features").output.shape
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.output)
    print(f"features: {features[1:]}, logits: {model.output.shape[1:]}")
    print(f"wrote {args.output} ({model.count_params():,} parameters)")
    return 0


def _add_fetch_model_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-model",
        help="download a pretrained ONNX model into the cache and verify its SHA-256",
        description="Download a pretrained ONNX model into the cache folder and verify its "
        "pinned SHA-256. Without network access, download the file by hand as the error "
        "message describes, or pass --trunk PATH to the commands that take a trunk.",
    )
    parser.add_argument("name", nargs="?", default="ferplus", choices=("ferplus",),
                        help="model to fetch; default: %(default)s (emotion-ferplus-8.onnx)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="folder for the file; default: $FER_FAIRNESS_CACHE/models or "
                        "~/.cache/fer-fairness/models")
    parser.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help="address to try instead of the built-in ones; repeat for several")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds allowed for each connect and read; default: %(default)s")
    parser.set_defaults(handler=_run_fetch_model)


def _run_fetch_model(args: argparse.Namespace) -> int:
    from fer_fairness.convert.fetch import ModelDownloadError, fetch_model

    try:
        path = fetch_model(args.name, cache_dir=args.cache_dir, urls=args.urls,
                           timeout=args.timeout)
    except ModelDownloadError as error:
        raise CommandError(str(error)) from error
    print(path)
    return 0


def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a run's model as a TensorFlow SavedModel and/or an ONNX file",
        description="Export RUN_DIR/model.keras for serving: a SavedModel with the signatures "
        "serving_default (uint8 images), serving_bytes (encoded JPEG or PNG) and "
        "serving_preprocessed, and an ONNX file. Both return probabilities keyed by head name.",
    )
    parser.add_argument("run_dir", type=Path, help="run folder written by fer-fairness train")
    parser.add_argument("--format", dest="export_format", choices=("savedmodel", "onnx", "both"),
                        default="both", help="what to write; default: %(default)s")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder that receives saved_model/ and model.onnx; default: RUN_DIR")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from fer_fairness.export import export_run

    # tf2onnx logs every optimizer pass at INFO.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    written = export_run(args.run_dir, export_format=args.export_format, output_dir=args.output)
    for export_format, path in written.items():
        print(f"{export_format}: {path}")
    return 0


# More files than this get a progress bar on stderr during fer-fairness predict.
PREDICT_PROGRESS_MIN_FILES = 200


def _add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict emotion, gender and age group for image files",
        description="Print, for every image (or every face with --detect-faces), the most "
        "probable emotion, gender and age group with their probabilities. Without "
        "--detect-faces the whole image is taken as one aligned face. Files that cannot be "
        "read are listed on stderr and the others still run; the exit status is then 1.",
    )
    parser.add_argument("model", type=Path,
                        help="run folder (model.keras), SavedModel folder or .onnx file")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR",
                        help="image files, or folders searched recursively for .jpg, .jpeg, "
                        ".png, .gif and .bmp files")
    parser.add_argument("--format", dest="output_format", choices=("table", "json", "csv"),
                        default="table", help="output written to stdout; default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="faces per model call; default: %(default)s")
    parser.add_argument("--detect-faces", action="store_true",
                        help="find faces with OpenCV's frontal-face Haar cascade and print one "
                        "row per face")
    parser.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CommandError(f"--batch-size={args.batch_size} is invalid; expected at least 1")
    from fer_fairness.predict import collect_image_paths, format_predictions, predict_images
    from fer_fairness.predictors import load_predictor

    predictor = load_predictor(args.model)
    paths = collect_image_paths(args.images)
    if not paths:
        raise CommandError("no image files found in the given paths")
    progress_bar = None
    if len(paths) > PREDICT_PROGRESS_MIN_FILES:
        from tqdm import tqdm

        progress_bar = tqdm(total=len(paths), unit="image", file=sys.stderr)
    try:
        result = predict_images(
            predictor, paths, batch_size=args.batch_size, find_faces=args.detect_faces,
            progress=progress_bar.update if progress_bar else None,
        )
    finally:
        if progress_bar is not None:
            progress_bar.close()
    text = format_predictions(result.predictions, args.output_format)
    if text:
        print(text)
    for path in result.without_faces:
        print(f"fer-fairness predict: no face found in {path}", file=sys.stderr)
    for path, reason in result.failures:
        print(f"fer-fairness predict: error: cannot read {path}: {reason}", file=sys.stderr)
    if result.failures:
        print(f"fer-fairness predict: {len(result.failures)} of {len(paths)} files failed",
              file=sys.stderr)
        return 1
    return 0


def _add_augment_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "augment",
        help="write a demographically balanced augmented copy set of the training split",
        description="Split the data exactly as training does (same seed and fractions), then "
        "write randomly transformed copies of the training faces of small groups until every "
        "group reaches the target. Validation and test faces never get copies. Train on the "
        "original data with [data] augmented_path set to the output folder.",
    )
    parser.add_argument("--config", type=Path,
                        help="TOML configuration of the training run; its [data] section and "
                        "training.seed decide the split")
    parser.add_argument("--data", help="data folder, or a prepared TFDS data set with "
                        "--source tfds")
    parser.add_argument("--data-format", choices=("auto", "rafdb", "manifest"),
                        help="layout of --data (default: detected from its content)")
    parser.add_argument("--source", choices=("folder", "tfds"),
                        help="read --data as a data folder or a prepared TFDS data set")
    parser.add_argument("--bad-images", choices=("stop", "skip"),
                        help="unreadable images: stop, or skip them")
    parser.add_argument("--output", type=Path, required=True,
                        help="output folder; must be empty unless --overwrite")
    parser.add_argument("--group-by", type=_parse_names,
                        help="comma-separated attributes that form the groups, from emotion, "
                        "gender, age, race (default: gender,age)")
    parser.add_argument("--target-count", type=int,
                        help="faces per group after augmentation (default: the largest group)")
    parser.add_argument("--max-factor", type=float, default=5.0,
                        help="a group grows to at most this many times its size; default: "
                        "%(default)s")
    parser.add_argument("--seed", type=int,
                        help="seed of the split (use the training run's) and of the transforms")
    parser.add_argument("--format", choices=("manifest", "tfds"), default="manifest",
                        help="manifest: labels.csv and images; tfds: also a prepared "
                        "face_manifest data set in OUTPUT/tfds; default: %(default)s")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous augment output in --output; other files "
                        "there are kept")
    parser.set_defaults(handler=_run_augment)


def _run_augment(args: argparse.Namespace) -> int:
    import dataclasses

    from fer_fairness import config as config_lib
    from fer_fairness.data.augment import TFDS_FOLDER, write_augmented_set
    from fer_fairness.data.prepare import prepare_splits

    base = config_lib.load_config(args.config) if args.config else config_lib.RunConfig()
    resolved = config_lib.override(base, {
        "data.path": args.data, "data.data_format": args.data_format,
        "data.source": args.source, "data.bad_images": args.bad_images,
        "data.group_by": args.group_by, "training.seed": args.seed,
    })
    if not resolved.data.path:
        raise CommandError("no data given; pass --data DIR or set [data] path in --config")
    # The copies come from the whole original train split, never from another augmented set.
    data = dataclasses.replace(resolved.data, augmented_path="", max_images=0)
    seed = resolved.training.seed
    prepared = prepare_splits(data, seed=seed)
    settings = {"data": data.path, "source": data.source, "split_seed": seed,
                "validation_fraction": data.validation_fraction,
                "test_fraction": data.test_fraction}
    try:
        result = write_augmented_set(
            prepared.splits["train"], args.output, group_by=data.group_by,
            target_count=args.target_count, max_factor=args.max_factor, seed=seed,
            overwrite=args.overwrite, settings=settings,
        )
    except FileExistsError as error:
        raise CommandError(str(error)) from error
    print(f"{'group':<28}{'before':>8}{'after':>8}")
    for name, count in result.before.items():
        print(f"{name:<28}{count:>8}{result.after.get(name, 0):>8}")
    print(f"wrote {result.copies} augmented images to {result.output}")
    if args.format == "tfds" and result.copies:
        from fer_fairness.data.tfds_features import prepare_dataset

        prepared_dir = prepare_dataset("face_manifest", manual_dir=result.output,
                                       data_dir=result.output / TFDS_FOLDER)
        print(f"TFDS data set: {prepared_dir}")
    elif args.format == "tfds":
        print("no group needed copies, so no TFDS data set was built")
    return 0


def _add_prepare_tfds_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-tfds",
        help="build a TFDS data set (raf_db or face_manifest) from local files, offline",
        description="Build a TFDS data set with the builder in datasets/NAME from the files in "
        "--manual-dir, without any download. Train on it with [data] source = \"tfds\" and "
        "path set to the folder this prints.",
    )
    parser.add_argument("name", choices=("raf_db", "face_manifest"), help="the data set")
    parser.add_argument("--manual-dir", type=Path, required=True,
                        help="raf_db: RAF-DB's basic folder or its parent; face_manifest: a "
                        "folder with labels.csv")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / "tensorflow_datasets",
                        help="TFDS data folder; default: %(default)s")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild a data set that is already prepared there")
    parser.set_defaults(handler=_run_prepare_tfds)


def _run_prepare_tfds(args: argparse.Namespace) -> int:
    from fer_fairness.data.tfds_features import prepare_dataset

    print(prepare_dataset(args.name, manual_dir=args.manual_dir, data_dir=args.data_dir,
                          overwrite=args.overwrite))
    return 0


def _parse_planted_gap(text: str):
    from fer_fairness.data.synthetic_config import PlantedGap

    try:
        return PlantedGap.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _add_synthesize_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="write the synthetic face data set, optionally with planted bias",
        description="Draw grayscale faces with seven expressions and known gender, age group "
        "and race, and write them as a manifest folder (labels.csv with a subject-disjoint "
        "split column, images/, metadata.json). The same settings give byte-identical files. "
        "Results on synthetic faces say nothing about real faces.",
        epilog="Planted gaps (--plant, repeatable) have the form "
        "KIND:ATTRIBUTE=GROUP:STRENGTH[:SPLIT,SPLIT...]. ATTRIBUTE is gender, age or race, and "
        "GROUP one of its values (male, female; 0-3, 4-19, 20-39, 40-69, 70+; caucasian, "
        "african_american, asian). KIND and STRENGTH: underrepresented (the group's sampling "
        "weight times STRENGTH, in (0, 1)), harder_expressions (expressions drawn at STRENGTH "
        "times the normal change, in (0, 1)), label_noise (a share STRENGTH, in (0, 1], of the "
        "group's images gets another emotion label). SPLITS default to all three. Example: "
        "--plant harder_expressions:gender=female:0.3 --plant "
        "underrepresented:race=asian:0.25:train",
    )
    parser.add_argument("--output", type=Path, required=True,
                        help="folder to write; must be empty unless --overwrite")
    parser.add_argument("--images", type=int, default=2000,
                        help="number of images; default: %(default)s")
    parser.add_argument("--subjects", type=int, default=None,
                        help="number of people; default: a quarter of --images")
    parser.add_argument("--image-size", type=int, default=64,
                        help="side of the square images in pixels, 64 to 512; default: "
                        "%(default)s")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the faces, labels and split; default: %(default)s")
    parser.add_argument("--plant", type=_parse_planted_gap, action="append", default=[],
                        metavar="KIND:ATTRIBUTE=GROUP:STRENGTH",
                        help="plant a gap against one group; see below")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier synthetic data set in --output")
    parser.set_defaults(handler=_run_synthesize)


def _run_synthesize(args: argparse.Namespace) -> int:
    from fer_fairness.data.synthetic import (
        SyntheticConfig,
        generate_synthetic,
        read_synthetic_metadata,
    )

    config = SyntheticConfig(n_images=args.images, n_subjects=args.subjects,
                             image_size=args.image_size, seed=args.seed,
                             planted_gaps=tuple(args.plant))
    try:
        folder = generate_synthetic(args.output, config, overwrite=args.overwrite)
    except FileExistsError as error:
        raise CommandError(str(error)) from error
    metadata = read_synthetic_metadata(folder)
    print(f"{'split':<12}{'images':>8}{'subjects':>10}")
    for split, count in metadata["images"].items():
        print(f"{split:<12}{count:>8}{metadata['subjects'][split]:>10}")
    for gap in metadata["planted_gaps"]:
        print(f"planted {gap['kind']} {gap['attribute']}={gap['group']} "
              f"strength={gap['strength']:g}: {_describe_measured(gap['measured'])}")
    print(f"wrote {folder}")
    return 0


def _describe_measured(measured: dict) -> str:
    if "rate" in measured:
        return (f"{measured['relabelled']} of {measured['images']} labels replaced "
                f"(rate {_format_value(measured['rate'])})")
    if "share" in measured:
        return ", ".join(f"{split} share {_format_value(share)}"
                         for split, share in measured["share"].items())
    change = measured["expression_pixel_change"]
    return (f"mean expression change {_format_value(change['group'])} gray levels vs "
            f"{_format_value(change['others'])} for the other faces")


# Compare flags that set base configuration fields, shared by every arm.
COMPARE_OVERRIDES: dict[str, str] = {
    flag: TRAIN_OVERRIDES[flag]
    for flag in (
        "data", "data_format", "source", "bad_images", "max_images", "group_by", "trunk",
        "trunk_classes", "batch_size", "heads_epochs", "heads_learning_rate", "finetune_epochs",
        "finetune_learning_rate", "patience", "seed", "deterministic", "precision",
        "cache_features", "selection", "fairness_floor", "fairness_floor_attribute",
        "min_group_size", "bootstrap",
    )
}


def _add_compare_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train several methods over several seeds and test their differences",
        description="Train each arm (method) once per seed with identical data, split, epochs "
        "and learning rates, then write comparison.json, comparison.md and comparison.png: "
        "per arm the mean and 95%% t-interval of accuracy and fairness, paired t-tests across "
        "seeds and paired bootstrap tests over test subjects against the first arm, and each "
        "arm's disadvantaged group per attribute. Finished runs in --output are reused, "
        "interrupted ones resumed. Default arms: baseline (emotion head only), multitask "
        "(emotion, gender, age heads), multitask_balanced (multitask with the balanced "
        "augmented data and balanced sampling), balanced (balanced data and sampling, emotion "
        "head only).",
    )
    parser.add_argument("--config", type=Path,
                        help="TOML file: the run sections shared by every arm, plus [compare] "
                        "(seeds, max_factor) and [[compare.arm]] tables")
    parser.add_argument("--data", help="data folder (default: the built-in synthetic data set)")
    parser.add_argument("--data-format", choices=("auto", "rafdb", "manifest"),
                        help="layout of --data (default: detected from its content)")
    parser.add_argument("--source", choices=("folder", "tfds"),
                        help="read --data as a data folder, or as a prepared TFDS data set")
    parser.add_argument("--bad-images", choices=("stop", "skip"),
                        help="unreadable images: stop before training, or skip them")
    parser.add_argument("--max-images", type=int, help="keep at most N images per split")
    parser.add_argument("--seeds", type=int, help="seeds per arm (default 3)")
    parser.add_argument("--seed", type=int, help="first seed; the others follow it (default 0)")
    parser.add_argument("--arms", type=_parse_names,
                        help="comma-separated arms in report order, the first being the "
                        "reference (default: baseline,multitask,multitask_balanced,balanced)")
    parser.add_argument("--output", type=Path,
                        help="comparison folder (default: comparisons/<data folder name>)")
    parser.add_argument("--group-by", type=_parse_names,
                        help="attributes that the balanced data and sampling even out "
                        "(default gender,age)")
    parser.add_argument("--max-factor", type=float,
                        help="a group of the balanced augmented set grows to at most this many "
                        "times its size (default 5)")
    parser.add_argument("--trunk", help="'ferplus' (cached FER+ model) or an .onnx/.keras file")
    parser.add_argument("--trunk-classes", type=_parse_names,
                        help="the trunk's logit order as comma-separated emotion names")
    parser.add_argument("--batch-size", type=int, help="images per training step")
    parser.add_argument("--heads-epochs", type=int, help="maximum epochs of phase 1")
    parser.add_argument("--heads-learning-rate", type=float, help="learning rate of phase 1")
    parser.add_argument("--finetune-epochs", type=int, help="maximum epochs of phase 2")
    parser.add_argument("--finetune-learning-rate", type=float, help="learning rate of phase 2")
    parser.add_argument("--patience", type=int,
                        help="phase-2 epochs without a better selection score")
    parser.add_argument("--loss-weights", type=_parse_loss_weights,
                        help="per-head loss weights of every arm, e.g. "
                        "emotion=1,gender=0.5,age=0.5")
    _add_selection_flags(parser)
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="enable TensorFlow op determinism: identical results on a rerun")
    parser.add_argument("--precision",
                        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                        help="dtype policy of the trunk in training (default auto)")
    parser.add_argument("--cache-features", choices=("auto", "memory", "disk", "off"),
                        help="where phase 1 keeps the trunk's features (default auto)")
    parser.add_argument("--min-group-size", type=int,
                        help="groups with fewer test images are left out of the fairness "
                        "ratios and group gaps (default 30)")
    parser.add_argument("--bootstrap", type=int,
                        help="bootstrap resamples of the paired tests (default 1000); 0 "
                        "disables them")
    parser.set_defaults(handler=_run_compare)


def _resolve_compare_config(args: argparse.Namespace):
    from fer_fairness import compare
    from fer_fairness import config as config_lib

    loaded = compare.load_compare_config(args.config) if args.config else None
    base = loaded.base if loaded else config_lib.RunConfig()
    changes = {field: getattr(args, flag) for flag, field in COMPARE_OVERRIDES.items()}
    if args.loss_weights:
        changes["training.loss_weights"] = {**base.training.loss_weights, **args.loss_weights}
    base = config_lib.override(base, changes)
    if not base.data.path:
        base = config_lib.override(base, {"data.path": _default_data_path()})
    arms = loaded.arms if loaded else tuple(compare.DEFAULT_ARMS.values())
    if args.arms:
        arms = compare.select_arms(arms, args.arms)
    options = {"seeds": args.seeds, "max_factor": args.max_factor}
    defaults = loaded or compare.CompareConfig(base=base)
    return compare.CompareConfig(
        base=base,
        arms=arms,
        **{name: getattr(defaults, name) if value is None else value
           for name, value in options.items()},
    )


# Means printed per arm after a comparison; comparison.md has every metric with its interval.
COMPARE_PRINTED_METRICS = ("overall_accuracy", "emotion_fairness", "gender_fairness",
                           "age_fairness")


def _run_compare(args: argparse.Namespace) -> int:
    from fer_fairness.compare import run_comparison
    from fer_fairness.reports.comparison import MARKDOWN_FILE, PLOT_FILE

    config = _resolve_compare_config(args)
    output = args.output or Path("comparisons") / Path(config.base.data.path).name
    result = run_comparison(config, output)
    summary = result.summary
    print(f"comparison folder: {result.output_dir} ({len(result.trained)} runs trained, "
          f"{len(result.reused)} reused)")
    print(f"{'arm':<22}" + "".join(f"{metric:>18}" for metric in COMPARE_PRINTED_METRICS))
    for arm in summary["arms"]:
        means = [summary["summary"][arm][metric]["mean"] for metric in COMPARE_PRINTED_METRICS]
        print(f"{arm:<22}" + "".join(f"{_format_value(mean):>18}" for mean in means))
    for entry in summary["group_gaps"][summary["reference"]].values():
        print(entry["sentence"])
    for metrics in summary["differences"].values():
        for entry in metrics.values():
            print(entry["sentence"])
    print(f"report: {result.output_dir / MARKDOWN_FILE}, plot: {result.output_dir / PLOT_FILE}")
    return 0


_PARSERS: list = [
    _add_train_parser,
    _add_evaluate_parser,
    _add_convert_parser,
    _add_fetch_model_parser,
    _add_export_parser,
    _add_predict_parser,
    _add_augment_parser,
    _add_prepare_tfds_parser,
    _add_synthesize_parser,
    _add_compare_parser,
]


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except (CommandError, ValueError, FileNotFoundError) as error:
        print(f"fer-fairness {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingFailure as error:
        print(f"fer-fairness {args.command}: training failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fer-fairness {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
