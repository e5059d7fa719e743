"""User mistakes (no face, a bad AU token, a corrupt file) reach the browser and the API client as their message."""
from __future__ import annotations

import functools
from typing import Callable

import gradio as gr

from aufx.au import AUError
from aufx.face.analysis import FaceNotFoundError
from aufx.io.images import ImageReadError

USER_ERRORS = (AUError, FaceNotFoundError, ImageReadError)


class NoImageError(AUError):
    """An action that needs an analysed photo was used before one was loaded."""


def user_errors(fn: Callable) -> Callable:
    """Re-raise the library's user errors as gr.Error, so the message is shown instead of a generic 'Error'."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper
