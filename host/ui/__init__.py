"""The mods' UI: CET's `ImGui` table (imgui_api), Dear ImGui through imgui-bundle
(imgui_backend, optional: the `ui` extra) and a pygame overlay that draws it
(imgui_overlay)."""
