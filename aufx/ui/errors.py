"""User mistakes (no face, a bad AU token, a corrupt file) reach the browser and the API client as their message;
anything else as a short generic one. Every message is short and names no server path.

Why here: a hostile client can send a 100,000-character AU token, a preset nested 10,000 deep, or a file that makes
a library raise with the server's temporary path in its text. Gradio shows gr.Error messages as they are and
replaces any other exception by a generic "upstream app has raised an exception", so every handler goes through
``user_errors`` and sees only ``client_message``.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Callable

import gradio as gr

from aufx.au import AUError
from aufx.face.analysis import FaceNotFoundError
from aufx.io.images import ImageReadError
from aufx.ui.paths import PathRefused

USER_ERRORS = (AUError, FaceNotFoundError, ImageReadError, PathRefused)
MAX_MESSAGE = 300  # characters a client sees at most
MAX_TOKEN = 40  # a longer word (an AU token, a file name) is cut to this
# An absolute path with two or more parts, unless it is a client's own path quoted in backticks by paths.shown.
_PATH = re.compile(r"(?<![`\w.:/])(?:/[^\s/'\"`(),:;]+){2,}/?")
log = logging.getLogger("aufx.app")


class NoImageError(AUError):
    """An action that needs an analysed photo was used before one was loaded."""


def _cut_token(match: re.Match) -> str:
    word = match.group(0)
    return word if len(word) <= MAX_TOKEN else word[:MAX_TOKEN - 1] + "…"


def _hide_path(match: re.Match) -> str:
    """A server path becomes its last part (the file name the user knows); client-typed paths are quoted by
    paths.shown and stay."""
    return match.group(0).rstrip("/").rsplit("/", 1)[-1]


def client_message(text: str) -> str:
    """At most MAX_MESSAGE characters, long tokens cut, absolute server paths reduced to their last part."""
    text = _PATH.sub(_hide_path, str(text))
    text = re.sub(r"\S{%d,}" % (MAX_TOKEN + 1), _cut_token, text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def number(value, what: str) -> float:
    """A finite number from a client's field, or a user error naming the field."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if x != x or x in (float("inf"), float("-inf")):
        raise AUError(f"{what}: expected a number, got {str(value)[:MAX_TOKEN]!r}")
    return x


def client_error(exc: BaseException | str) -> gr.Error:
    return gr.Error(client_message(str(exc)), print_exception=False)


def guarded(fn: Callable, kinds: tuple[type[BaseException], ...] = ()) -> Callable:
    """``fn`` with the library's user errors and ``kinds`` shown as short messages, and any other exception
    logged on the server and shown as a short generic message (never Gradio's generic handler)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            raise client_error(exc.message) from None
        except (*USER_ERRORS, *kinds) as exc:
            raise client_error(exc) from None
        except RecursionError:
            raise client_error("the input is nested too deeply to read") from None
        except MemoryError:
            raise client_error("the input is too large for the server's memory; make it smaller") from None
        except Exception as exc:  # a bug or an unforeseen input: the log has the traceback, the client a summary
            log.exception("unexpected error in %s", getattr(fn, "__name__", "handler"))
            raise client_error(f"could not do this ({type(exc).__name__}); the server log has the details") from None

    return wrapper


def user_errors(fn: Callable) -> Callable:
    """Re-raise the library's user errors as short gr.Error messages (see ``guarded``)."""
    return guarded(fn)
