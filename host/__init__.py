"""Relic: LuaJIT mods and a local llama.cpp LLM inside a game process."""

__version__ = "0.1.0"
