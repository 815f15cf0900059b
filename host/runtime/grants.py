"""Privileges of a mod: given by the player or the game, never by the mod.

A mod's own folder is writable by the mod (`io`, `db`), so nothing read from
it may raise the mod's privileges: `mod.toml` can *ask* for trust, a bigger
budget or more memory, but what it gets is decided here, from the grants the
embedding game passes to ``Host(grants=...)`` (or the player gives with
``relic run --trust ID`` / the ``[mods.ID]`` tables of the player's config
file, which lives outside the mods folder).

A request above what is granted is lowered to the grant (or to the host-wide
default in ``Limits``) with a warning in the mod's log; a request below it is
kept, so a mod can always ask for less.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from host.errors import ConfigError

# The valid ranges of memory_mb and budget_ms that a grant or a mod.toml may name (what a mod
# gets is bounded by its grant and the host's limits, host.limits); not a policy a game tunes.
MIN_MEMORY_MB = 4      # the sandbox and shared libraries take ~0.5 MiB; host data keeps 1 MiB spare
MAX_MEMORY_MB = 4096
MAX_BUDGET_MS = 10_000


@dataclass(frozen=True)
class Grant:
    """What the player or the game allows one mod (None: the host's default)."""

    trusted: bool = False
    budget_ms: int | None = None
    memory_mb: int | None = None

    def __post_init__(self):
        if not isinstance(self.trusted, bool):
            raise ConfigError(f"grant: 'trusted' must be true or false, got {self.trusted!r}")
        for key, low, high in (("budget_ms", 1, MAX_BUDGET_MS), ("memory_mb", MIN_MEMORY_MB, MAX_MEMORY_MB)):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"grant: '{key}' must be an integer from {low} to {high}, got {value!r}")


NO_GRANT = Grant()

TRUST_HINT = ("trust is given by the player or the game (relic run --trust {id}, or trusted = true "
              "under [mods.{id}] in the player's relic.toml), never by the mod's own files")


def apply_grant(manifest, grant: Grant | None, limits):
    """The manifest with its effective privileges: the mod's requests bounded by ``grant``.

    ``manifest.requested`` holds what mod.toml asked for; the returned copy's
    ``trusted``, ``budget_ms`` and ``memory_mb`` are what the mod gets, and any
    request that was lowered adds a warning line for the mod's log.
    """
    grant = grant or NO_GRANT
    asked = manifest.requested
    warnings = list(manifest.warnings)
    trusted = grant.trusted
    if asked.get("trusted") and not trusted:
        warnings.append("mod.toml asks for trusted = true; running sandboxed: "
                        + TRUST_HINT.format(id=manifest.id))
    values = {}
    for key, default in (("budget_ms", limits.budget_ms), ("memory_mb", limits.memory_mb)):
        ceiling = getattr(grant, key) if getattr(grant, key) is not None else default
        wanted = asked.get(key)
        if wanted is None or wanted == ceiling:
            values[key] = ceiling
        elif wanted < ceiling:
            values[key] = wanted
        else:
            values[key] = ceiling
            warnings.append(f"mod.toml asks for {key} = {wanted}; the player or game allows {ceiling}, "
                            f"so {key} = {ceiling} (grant more under [mods.{manifest.id}] in relic.toml)")
    return replace(manifest, trusted=trusted, warnings=warnings, **values)


def grant_for(grants: Mapping[str, Grant] | None, mod_id: str) -> Grant:
    """The grant of ``mod_id`` (NO_GRANT when the player or game gave none)."""
    return (grants or {}).get(mod_id, NO_GRANT)
