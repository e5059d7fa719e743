"""Small component helpers the tabs share."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from aufx.ui.errors import client_error


def photo_input(**kwargs) -> gr.Image:
    """A gr.Image whose unreadable upload is a user error naming the file, instead of a generic 'Error' toast.

    The stock preprocess is wrapped on the instance: subclassing a Gradio component makes Gradio write a .pyi stub
    into our source tree on import.
    """
    image = gr.Image(**kwargs)
    stock = image.preprocess

    def preprocess(payload):
        try:
            return stock(payload)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            name = getattr(payload, "orig_name", None) or "the upload"
            raise client_error(f"{name}: not a readable image ({exc.__class__.__name__}: {exc})") from None

    image.preprocess = preprocess
    return image


def unchanged(outputs: list) -> list:
    """An event result that leaves every output as it is."""
    return [gr.skip()] * len(outputs)
