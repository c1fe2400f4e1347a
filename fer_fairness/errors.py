"""Exception types shared across modules; importing this module loads no TensorFlow."""

from __future__ import annotations


class TrainingFailure(Exception):
    """A training run stopped because of a problem found while it ran.

    The command line reports these without a traceback and exits with status 1, after the run
    folder's ``status.json`` has recorded the reason.
    """
