"""The multi-task model: the converted trunk cut at ``features``, plus one head per output.

The heads are single ``Dense`` layers that output logits, named ``emotion``, ``gender``, ``age``
and ``race``. The emotion head starts as the trunk's own classifier restricted to the seven
canonical emotions, so before any training the model predicts what the pretrained trunk does.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from fer_fairness.labels import (
    EMOTIONS,
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    HEAD_CLASSES,
    class_mapping,
)

logger = logging.getLogger(__name__)

FEATURES_LAYER = "features"
LOGITS_LAYER = "logits"
TRUNK_NAME = "trunk"
FLATTEN_NAME = "flatten_features"
# A probed classifier counts as linear when a random input reproduces within this max-abs error.
LINEARITY_TOLERANCE = 1e-3


def load_trunk(spec: str) -> keras.Model:
    """Load a trunk: ``ferplus`` (cached, checksummed zoo model), an ``.onnx`` or a ``.keras`` file.

    ``.keras`` files load with Keras's default ``safe_mode=True``. The trunk must contain the
    layers ``features`` and ``logits``, which the converter adds to every converted model.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file is not a usable trunk.
    """
    if spec == "ferplus":
        from fer_fairness.convert.fetch import fetch_model

        path = fetch_model("ferplus")
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(
                f"trunk file {path} not found; pass an .onnx or .keras file, or 'ferplus' "
                "for the FER+ model (fer-fairness fetch-model ferplus downloads it)"
            )
    if path.suffix == ".keras":
        trunk = _load_keras_trunk(path)
    elif path.suffix == ".onnx":
        from fer_fairness.convert import convert_onnx

        trunk = convert_onnx(path)
    else:
        raise ValueError(f"trunk {path} has suffix {path.suffix!r}; expected .onnx or .keras")
    _check_trunk(trunk, path)
    return trunk


def load_keras_file(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file with Keras's default ``safe_mode=True``, uncompiled.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file, if it is truncated, not a ``.keras`` zip archive, or
            contains code that safe mode rejects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a valid .keras file (truncated, or not a zip archive); save the "
            "model again or copy the complete file"
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .keras model: {error}") from error


def _load_keras_trunk(path: Path) -> keras.Model:
    return load_keras_file(path)


def _check_trunk(trunk: keras.Model, path: Path) -> None:
    names = {layer.name for layer in trunk.layers}
    missing = sorted({FEATURES_LAYER, LOGITS_LAYER} - names)
    if missing:
        raise ValueError(
            f"trunk {path} lacks the layer(s) {missing}; convert the ONNX file with "
            "fer-fairness convert, which names the penultimate features and the logits"
        )


def default_trunk_classes(num_logits: int) -> tuple[str, ...]:
    """Return the class order of a known trunk from its logit count (8: FER+, 7: FER2013)."""
    if num_logits == len(FERPLUS_CLASSES):
        return FERPLUS_CLASSES
    if num_logits == len(FER2013_CLASSES):
        return FER2013_CLASSES
    raise ValueError(
        f"the trunk has {num_logits} logits, which matches no known class order; "
        "set model.trunk_classes to its output order"
    )


def feature_extractor(trunk: keras.Model) -> keras.Model:
    """Return the trunk cut at ``features``, as a model named ``trunk``."""
    features = trunk.get_layer(FEATURES_LAYER).output
    return keras.Model(trunk.inputs, features, name=TRUNK_NAME)


def probe_classifier(trunk: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(kernel, bias)`` of the trunk's map from flattened ``features`` to ``logits``.

    The map is linear in every supported trunk (a dense layer for FER+, a convolution plus
    global average pooling for mini-Xception), so feeding the zero vector gives the bias and
    feeding each unit vector gives one kernel row. The result is exact up to float rounding.

    Raises:
        ValueError: if the map is not linear, e.g. an activation sits between the two points.
    """
    features = trunk.get_layer(FEATURES_LAYER).output
    logits = trunk.get_layer(LOGITS_LAYER).output
    classifier = keras.Model(features, logits, name="classifier_probe")
    feature_shape = tuple(features.shape[1:])
    size = int(np.prod(feature_shape))
    basis = np.concatenate([np.zeros((1, size)), np.eye(size)]).astype(np.float32)
    outputs = classifier.predict(basis.reshape((-1, *feature_shape)), batch_size=256, verbose=0)
    bias = outputs[0]
    kernel = outputs[1:] - bias
    _check_linear(classifier, kernel, bias, feature_shape)
    return kernel, bias


def _check_linear(classifier, kernel, bias, feature_shape) -> None:
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(4, kernel.shape[0])).astype(np.float32)
    expected = sample @ kernel + bias
    actual = classifier.predict(sample.reshape((-1, *feature_shape)), verbose=0)
    error = float(np.max(np.abs(actual - expected)))
    if error > LINEARITY_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise ValueError(
            f"the trunk's map from 'features' to 'logits' is not linear (max error {error:.3g}); "
            "the emotion head cannot start from the trunk's classifier"
        )


def build_heads(
    trunk: keras.Model,
    *,
    heads: Sequence[str],
    trunk_classes: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, keras.layers.Dense]:
    """Create one ``Dense`` logits layer per head, the emotion head from the trunk's classifier."""
    num_logits = int(trunk.get_layer(LOGITS_LAYER).output.shape[-1])
    classes = tuple(trunk_classes) or default_trunk_classes(num_logits)
    if len(classes) != num_logits:
        raise ValueError(
            f"model.trunk_classes names {len(classes)} classes but the trunk has {num_logits} logits"
        )
    rows = class_mapping(classes, EMOTIONS)
    kernel, bias = probe_classifier(trunk)
    layers = {}
    for index, head in enumerate(heads):
        initializer = keras.initializers.GlorotUniform(seed=seed + index)
        # float32 even under a mixed-precision policy, so logits and losses stay float32.
        layers[head] = keras.layers.Dense(
            len(HEAD_CLASSES[head]), kernel_initializer=initializer, name=head, dtype="float32"
        )
        layers[head].build((None, kernel.shape[0]))
    layers["emotion"].set_weights([kernel[:, rows], bias[rows]])
    logger.info(
        "emotion head initialised from the trunk's classifier (trunk classes %s)", list(classes)
    )
    return layers


def assemble(
    extractor: keras.Model,
    heads: Mapping[str, keras.layers.Layer],
    *,
    trunk_inference: bool,
) -> keras.Model:
    """Connect the feature extractor and the heads into one model with dict outputs.

    Args:
        extractor: The trunk cut at ``features`` (see ``feature_extractor``).
        heads: Head layers keyed by output name.
        trunk_inference: Call the trunk with ``training=False``, so its dropout and batch
            normalisation act as at inference (phase 1).

    Returns:
        A model from ``image`` float32 ``(batch, H, W, 1)`` in 0..255 to a dict of logits.
    """
    image = keras.Input(shape=extractor.input_shape[1:], name="image")
    if trunk_inference:
        features = _inference_view(extractor)(image, training=False)
    else:
        features = extractor(image)
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name=FLATTEN_NAME)(features)
    outputs = {name: layer(features) for name, layer in heads.items()}
    return keras.Model(image, outputs, name="fer_multitask")


def _inference_view(extractor: keras.Model) -> keras.Model:
    """Return a model named ``trunk`` that shares the extractor's layers and stays in inference.

    Keras 3.15 Functional models replace the ``training=False`` recorded for a nested model's
    call with the outer call's ``training``, which ``fit`` sets to True, so the trunk's dropout
    would be active in phase 1. A model without ``training`` among its call-context arguments
    keeps the recorded value. The view is a separate object, so the extractor itself still
    follows ``training`` in phase 2.
    """
    view = keras.Model(extractor.input, extractor.output, name=TRUNK_NAME)
    view._call_context_args = view._call_context_args - {"training"}
    return view


def trunk_of(model: keras.Model) -> keras.Model:
    """Return the nested trunk model of an assembled multi-task model."""
    return model.get_layer(TRUNK_NAME)


def has_trunk(model: keras.Model) -> bool:
    """Return whether ``model`` contains the trunk (the heads-only model of phase 1 does not)."""
    return any(layer.name == TRUNK_NAME for layer in model.layers)


def head_names(model: keras.Model) -> list[str]:
    """Return the output names of an assembled model, in the canonical head order."""
    names = [layer.name for layer in model.layers if layer.name in HEAD_CLASSES]
    return [head for head in HEAD_CLASSES if head in names]
