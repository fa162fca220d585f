"""Checkpoint files: a state dict plus a small JSON-able config, loaded with ``weights_only=True``.

A checkpoint ``NAME.pt`` holds ``{"state_dict": ..., "config": {"model": ..., "prior": ...,
"training": ...}}``; ``NAME.json`` repeats the config for people and tools, ``NAME.md`` records how it
was trained. The shipped default lives in ``surrogates/checkpoints/pfn_default.pt``.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from bocli.errors import UserError
from surrogates.pfn_net.model import PFNConfig, PFNTransformer

__all__ = [
    "DEFAULT_NAME",
    "CheckpointError",
    "default_checkpoint_path",
    "load_checkpoint",
    "read_config",
    "save_checkpoint",
]

DEFAULT_NAME = "pfn_default"


class CheckpointError(UserError, ValueError):
    """A PFN checkpoint is missing, unreadable or not a bocli PFN checkpoint."""


def default_checkpoint_path() -> Path:
    """The checkpoint shipped inside the package (``surrogates/checkpoints/pfn_default.pt``)."""
    from importlib.resources import files

    return Path(str(files("surrogates") / "checkpoints" / f"{DEFAULT_NAME}.pt"))


def save_checkpoint(model: PFNTransformer, path: str | Path, config: dict[str, Any]) -> None:
    """Write ``path`` (``.pt``) and its ``.json`` config atomically. ``config`` must be JSON-able and
    hold at least ``{"model": PFNConfig.to_dict()}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"state_dict": state, "config": config}, tmp)
    os.replace(tmp, path)
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_json, path.with_suffix(".json"))


def read_config(path: str | Path | None = None) -> dict[str, Any]:
    """The config stored in a checkpoint (default: the shipped one), validated."""
    return _load_raw(path)["config"]


def _load_raw(path: str | Path | None) -> dict[str, Any]:
    p = default_checkpoint_path() if path is None else Path(path)
    where = "the shipped PFN checkpoint" if path is None else f"PFN checkpoint '{p}'"
    if not p.is_file():
        hint = (
            " (reinstall bocli, or train one with `bocli pfn train`)"
            if path is None
            else " (train one with `bocli pfn train --out DIR`)"
        )
        raise CheckpointError(f"{where} does not exist{hint}")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except torch.OutOfMemoryError:
        raise
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
    ) as e:
        # a truncated or foreign file: torch raises these kinds (an unpickling error for a foreign
        # or non-weights-only file, RuntimeError for a damaged zip archive, EOFError when empty,
        # IndexError/KeyError/TypeError from the weights-only unpickler reading text as opcodes)
        if _is_out_of_memory(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in first:  # torch's long advice is about other files
            first = "it holds more than tensors and plain data"
        raise CheckpointError(f"{where} is corrupted or not a torch file: {first[:160]}") from None
    if not isinstance(raw, dict) or "state_dict" not in raw or "config" not in raw:
        raise CheckpointError(f"{where} is not a bocli PFN checkpoint (no state_dict/config)")
    cfg = raw["config"]
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"{where} has no model config")
    return raw


def _is_out_of_memory(e: BaseException) -> bool:
    """torch reports a failed allocation as ``torch.OutOfMemoryError`` (CUDA) or as a plain
    ``RuntimeError`` (CPU allocator); neither means the file is bad."""
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return "out of memory" in text or "allocate memory" in text or "not enough memory" in text


_CACHE: dict[tuple[str, float], tuple[PFNTransformer, dict[str, Any]]] = {}


def load_checkpoint(path: str | Path | None = None) -> tuple[PFNTransformer, dict[str, Any]]:
    """Load a checkpoint (default: the shipped one) into an eval-mode ``PFNTransformer`` on the CPU.

    Loaded models are cached by path and modification time (a BO run refits every iteration).

    Raises:
        CheckpointError: missing, corrupted or incompatible file (one line, names the file).
    """
    p = default_checkpoint_path() if path is None else Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.is_file() else -1.0)
    if key in _CACHE:
        return _CACHE[key]
    raw = _load_raw(path)
    cfg = raw["config"]
    try:
        model = PFNTransformer(PFNConfig(**cfg["model"]))
        model.load_state_dict(raw["state_dict"])
    except (TypeError, RuntimeError, KeyError, ValueError) as e:
        if _is_out_of_memory(e):  # a huge config on a small machine: not a damaged file
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"PFN checkpoint '{p}' does not match its config: {first[:160]}"
        ) from None
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    _CACHE[key] = (model, cfg)
    return model, cfg
