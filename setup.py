"""Packaging detail pyproject.toml cannot say: the shared Lua library in lua/ ships as the
package ``host.lua`` (package data), so an installed Relic finds it (host.runtime.sandbox.default_lua_dir)."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["host", "host.*"]) + ["host.lua"], package_dir={"host.lua": "lua"})
