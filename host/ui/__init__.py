"""The mods' UI: CET's `ImGui` table (imgui_api: the layer, frames and Begin/End stacks),
generated from one table of every function (imgui_names) through its argument checks
(imgui_args) and calls (imgui_calls), with textures from the mods' folders
(imgui_textures); Dear ImGui through imgui-bundle (imgui_backend, optional: the `ui`
extra) and a pygame overlay that draws it (imgui_overlay)."""
