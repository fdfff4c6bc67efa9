"""Text encoders: what turns texts into the features a head trains on."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np


class TextEncoder(abc.ABC):
    """A frozen text encoder whose outputs are cached on disk.

    Subclasses set ``name`` and ``dim`` and implement :meth:`encode`; encoders that can return
    token-level states also implement :meth:`encode_tokens`.
    """

    name: ClassVar[str]
    #: outputs this encoder can produce: "embeddings" (pooled) and maybe "token_states" and
    #: "token_ids" (its tokenizer's ids, for models that embed tokens themselves).
    provides: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    #: ``on_rows(n)``: set by the feature cache while it encodes, for a progress display;
    #: encoders that work in batches call :meth:`rows_done` after each batch (optional).
    on_rows: Callable[[int], None] | None = None

    def __init__(self, *, max_length: int = 128, device: str = "cpu", **options: Any) -> None:
        if options:
            raise ValueError(
                f"encoder {self.name!r} takes no option(s) {sorted(options)}; "
                "valid options: none"
            )
        self.max_length = max_length
        self.device = device

    def rows_done(self, rows: int) -> None:
        """Report ``rows`` more texts encoded (to :attr:`on_rows`; a display never fails an
        encoding)."""
        if self.on_rows is not None:
            try:
                self.on_rows(rows)
            except Exception:  # noqa: BLE001
                pass

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Width of a pooled embedding."""

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """What makes two encodings equal: name, settings and a hash of the weight files."""

    @abc.abstractmethod
    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Pooled embeddings, ``(n, dim)`` float32."""

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token states ``(n, max_length, dim)`` float16 and a ``(n, max_length)`` mask."""
        raise NotImplementedError(f"encoder {self.name!r} does not produce token states")

    @property
    def num_ids(self) -> int:
        """Size of the token-id space of :meth:`encode_ids` (embedding-table rows)."""
        raise NotImplementedError(f"encoder {self.name!r} does not produce token ids")

    def encode_ids(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``(n, max_length)`` int32 (0 = padding) and a ``(n, max_length)`` mask."""
        raise NotImplementedError(f"encoder {self.name!r} does not produce token ids")

    def count_truncated(self, texts: Sequence[str]) -> int | None:
        """How many of ``texts`` are longer than ``max_length`` in this encoder's own tokens,
        so that it encodes only their beginning (None: the encoder cannot tell)."""
        return None

    def token_vectors(self) -> np.ndarray | None:
        """Pretrained vectors for the first rows of the id space, or None (learn them)."""
        return None
