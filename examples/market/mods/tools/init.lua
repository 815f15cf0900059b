-- A CET-style tools window: open the overlay with F1 (onOverlayOpen), and it
-- draws in onDraw with ImGui, the way Cyber Engine Tweaks mods do.
local show = false
local frames, seconds = 0, 0
local settings = { show_clock = true, note = "" }

local f = io.open("settings.json")          -- CET's config pattern: a file in the mod's folder
if f then
  local ok, saved = pcall(json.decode, f:read("*a"))
  f:close()
  if ok and type(saved) == "table" then settings = saved end
end

local function save()
  local out = io.open("settings.json", "w")
  if out then out:write(json.encode(settings)) out:close() end
end

registerForEvent("onOverlayOpen", function() show = true end)
registerForEvent("onOverlayClose", function() show = false save() end)
registerForEvent("onUpdate", function(dt) frames = frames + 1 seconds = seconds + dt end)

registerForEvent("onDraw", function()
  if not show then return end
  ImGui.SetNextWindowPos(600, 20, ImGuiCond.FirstUseEver)
  ImGui.SetNextWindowSize(330, 210, ImGuiCond.FirstUseEver)
  if ImGui.Begin("Market tools (F1)") then
    ImGui.Text(string.format("%d frames, %.1f s", frames, seconds))
    settings.show_clock = ImGui.Checkbox("Show the clock", settings.show_clock)
    if settings.show_clock then ImGui.TextColored(0.9, 0.8, 0.3, 1, os.date("%H:%M:%S")) end
    ImGui.Separator()
    ImGui.Text("Mods: " .. table.concat(GetMods(), ", "))
    settings.note = ImGui.InputText("Note", settings.note or "", 80)
    if ImGui.Button("Save") then save() end
  end
  ImGui.End()
end)
