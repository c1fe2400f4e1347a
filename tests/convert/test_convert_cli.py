"""``fer-fairness convert``: summary, .keras file, and reload in a fresh Python process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fer_fairness import cli

# Runs in a fresh interpreter: loads the .keras file with Keras's default safe_mode and fails
# if anything imported fer_fairness.
RELOAD_SCRIPT = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    model = keras.saving.load_model(sys.argv[1])
    logits = model.predict(np.load(sys.argv[2]), verbose=0)
    assert not any(name.startswith("fer_fairness") for name in sys.modules), "imported"
    np.save(sys.argv[3], logits)
""")


@pytest.fixture(scope="module")
def converted_file(ferplus_replica_path, tmp_path_factory):
    output = tmp_path_factory.mktemp("cli") / "trunk.keras"
    status = cli.main(["convert", str(ferplus_replica_path), "--output", str(output)])
    assert status == 0
    return output


def test_cli_convert_prints_layer_shapes(ferplus_replica_path, tmp_path, capsys):
    output = tmp_path / "trunk.keras"
    status = cli.main(["convert", str(ferplus_replica_path), "--output", str(output)])
    printed = capsys.readouterr().out
    assert status == 0
    assert output.is_file()
    assert "Convolution362__Plus364 (Conv2D)" in printed
    assert "(None, 4, 4, 256)" in printed
    assert "features: (1024,), logits: (8,)" in printed


def test_cli_convert_rejects_other_suffix(ferplus_replica_path, tmp_path, capsys):
    status = cli.main(["convert", str(ferplus_replica_path), "--output",
                       str(tmp_path / "trunk.h5")])
    assert status == 2
    assert "must end in .keras" in capsys.readouterr().err


def test_cli_convert_missing_model(tmp_path, capsys):
    status = cli.main(["convert", str(tmp_path / "absent.onnx"), "--output",
                       str(tmp_path / "trunk.keras")])
    assert status == 2
    assert "ONNX model not found" in capsys.readouterr().err


def test_keras_file_reloads_in_fresh_process(converted_file, converted_replica, random_pixels,
                                             tmp_path):
    inputs, outputs = tmp_path / "inputs.npy", tmp_path / "outputs.npy"
    np.save(inputs, random_pixels[:8])
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(converted_file), str(inputs), str(outputs)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = converted_replica.predict(random_pixels[:8], verbose=0)
    np.testing.assert_array_equal(np.load(outputs), expected)


def test_console_script_convert(ferplus_replica_path, tmp_path):
    script = Path(sys.executable).with_name("fer-fairness")
    output = tmp_path / "trunk.keras"
    result = subprocess.run([str(script), "convert", str(ferplus_replica_path), "--output",
                             str(output)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.is_file()
    assert "wrote" in result.stdout
