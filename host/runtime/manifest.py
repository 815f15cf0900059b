"""Mod discovery: drop-in folders `mods/<id>/init.lua` with an optional `mod.toml`.

`discover()` lists what is in the mods folder and why anything was skipped;
`load_order()` sorts the valid mods so dependencies load first.

`trusted`, `memory_mb` and `budget_ms` in mod.toml are requests only (the
mod can write its own folder): `host.runtime.grants.apply_grant` turns them
into what the mod gets, bounded by what the player or the game granted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

from host.errors import ManifestError
from host.runtime.grants import MAX_BUDGET_MS, MAX_MEMORY_MB, MIN_MEMORY_MB, apply_grant, grant_for
from host.limits import Limits

ID_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
MANIFEST_KEYS = {"name", "version", "description", "dependencies", "trusted",
                 "memory_mb", "budget_ms"}
# The shape of mod.toml (format bounds, not policy: the policy limits are in host.limits; the
# valid ranges of memory_mb and budget_ms are host.runtime.grants', shared with the grants).
MAX_MANIFEST_BYTES = 64 * 1024
MAX_TEXT_CHARS = {"name": 100, "version": 64, "description": 2000}
MAX_DEPENDENCIES = 64


@dataclass
class Manifest:
    """What a mod folder declares (defaults filled in)."""

    id: str
    folder: Path
    name: str = ""
    version: str = ""
    description: str = ""
    dependencies: tuple[str, ...] = ()
    trusted: bool = False
    memory_mb: int = 64
    budget_ms: int = 50
    warnings: list[str] = field(default_factory=list)
    # what mod.toml asked for ("trusted", "memory_mb", "budget_ms"); never applied as is
    requested: dict = field(default_factory=dict)


@dataclass
class Skipped:
    """A folder that is not a loadable mod, and why."""

    id: str
    folder: Path
    reason: str


def valid_id(mod_id: str) -> bool:
    """True when `mod_id` is a legal mod id (`[A-Za-z0-9_.-]+`, not . or ..)."""
    return bool(ID_RE.match(mod_id)) and mod_id not in (".", "..")


def _expect(data: dict, key: str, kind, what: str):
    value = data[key]
    # bool is an int subclass; keep "memory_mb = true" an error.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        shown = repr(value)
        raise ManifestError(f"mod.toml: '{key}' must be {what}, got "
                            f"{shown if len(shown) <= 64 else shown[:60] + '...'}")
    return value


def read_manifest(folder: Path, mod_id: str, limits: Limits) -> Manifest:
    """Parse `folder/mod.toml` (if any) into a Manifest; raise ManifestError."""
    m = Manifest(id=mod_id, folder=folder, name=mod_id,
                 memory_mb=limits.memory_mb, budget_ms=limits.budget_ms)
    path = folder / "mod.toml"
    if not path.is_file():
        return m
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"mod.toml is {size} bytes; the limit is {MAX_MANIFEST_BYTES}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"mod.toml is not valid TOML: {e}") from None
    except RecursionError:   # tomllib recurses once per nested array or table
        raise ManifestError("mod.toml is not valid TOML: values nested too deeply") from None
    unknown = [key for key in data if key not in MANIFEST_KEYS]
    for key in unknown[:10]:
        m.warnings.append(f"mod.toml: unknown key '{key[:64]}' ignored")
    if len(unknown) > 10:
        m.warnings.append(f"mod.toml: {len(unknown) - 10} more unknown keys ignored")
    for key in ("name", "version", "description"):
        if key in data:
            setattr(m, key, _expect(data, key, str, "a string"))
            if len(getattr(m, key)) > MAX_TEXT_CHARS[key]:
                raise ManifestError(f"mod.toml: '{key}' is longer than {MAX_TEXT_CHARS[key]} characters")
    if "dependencies" in data:
        deps = _expect(data, "dependencies", list, "a list of mod ids")
        if len(deps) > MAX_DEPENDENCIES:
            raise ManifestError(f"mod.toml: more than {MAX_DEPENDENCIES} dependencies")
        for d in deps:
            if not isinstance(d, str) or not valid_id(d) or len(d) > 128:
                raise ManifestError(f"mod.toml: dependency {str(d)[:64]!r} is not a valid mod id")
        if mod_id in deps:
            raise ManifestError("mod.toml: a mod cannot depend on itself")
        m.dependencies = tuple(dict.fromkeys(deps))
    if "trusted" in data:
        m.requested["trusted"] = _expect(data, "trusted", bool, "true or false")
    if "memory_mb" in data:
        mem = m.requested["memory_mb"] = _expect(data, "memory_mb", int, "an integer")
        if not MIN_MEMORY_MB <= mem <= MAX_MEMORY_MB:
            raise ManifestError(f"mod.toml: memory_mb must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}, "
                                f"got {mem}")
    if "budget_ms" in data:
        budget = m.requested["budget_ms"] = _expect(data, "budget_ms", int, "an integer")
        if not 1 <= budget <= MAX_BUDGET_MS:
            raise ManifestError(f"mod.toml: budget_ms must be between 1 and {MAX_BUDGET_MS}, got {budget}")
    return m


def inspect_folder(folder: Path, limits: Limits, grants=None) -> Manifest | Skipped:
    """Manifest of one mod folder with its granted privileges, or the reason it cannot be a mod.

    ``grants`` maps mod ids to ``host.runtime.grants.Grant``: what the player
    or the game allows; a mod without one runs sandboxed with the defaults.
    """
    mod_id = folder.name
    if not valid_id(mod_id):
        return Skipped(mod_id, folder, f"'{mod_id}' is not a valid mod id "
                                       "(letters, digits, '_', '.', '-' only)")
    if not (folder / "init.lua").is_file():
        return Skipped(mod_id, folder, "no init.lua in the folder")
    try:
        return apply_grant(read_manifest(folder, mod_id, limits), grant_for(grants, mod_id), limits)
    except ManifestError as e:
        return Skipped(mod_id, folder, str(e))


def discover(mods_dir: Path, limits: Limits, grants=None) -> tuple[list[Manifest], list[Skipped]]:
    """All mod folders under `mods_dir`, split into manifests and skipped ones.

    Hidden folders (starting with '.') and plain files are ignored silently.
    """
    found: list[Manifest] = []
    skipped: list[Skipped] = []
    if not mods_dir.is_dir():
        return found, skipped
    for folder in sorted(mods_dir.iterdir(), key=lambda p: p.name):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        r = inspect_folder(folder, limits, grants)
        (found if isinstance(r, Manifest) else skipped).append(r)
    return found, skipped


def load_order(manifests: list[Manifest]) -> tuple[list[Manifest], list[Skipped]]:
    """Sort so every mod comes after its dependencies (ties by id).

    Mods with a missing dependency, or in a dependency cycle, are returned as
    skipped, and so is everything that depends on them.
    """
    by_id = {m.id: m for m in manifests}
    skipped: dict[str, str] = {}
    changed = True
    while changed:      # drop mods whose dependencies are missing, transitively
        changed = False
        for m in manifests:
            if m.id in skipped:
                continue
            for d in m.dependencies:
                if d not in by_id:
                    skipped[m.id] = f"dependency '{d}' is not installed"
                elif d in skipped:
                    skipped[m.id] = f"dependency '{d}' cannot be loaded"
                else:
                    continue
                changed = True
                break
    ordered: list[Manifest] = []
    placed: set[str] = set()
    pending = sorted((m for m in manifests if m.id not in skipped), key=lambda m: m.id)
    while pending:
        ready = [m for m in pending if all(d in placed for d in m.dependencies)]
        if not ready:
            for m in pending:
                skipped[m.id] = "dependency cycle among: " + ", ".join(p.id for p in pending)
            break
        m = ready[0]
        ordered.append(m)
        placed.add(m.id)
        pending.remove(m)
    return ordered, [Skipped(mid, by_id[mid].folder, why) for mid, why in sorted(skipped.items())]
