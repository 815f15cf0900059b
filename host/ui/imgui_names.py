"""CET's ImGui flag table names and the imgui-bundle enums they come from (no imports)."""

# CET's Lua table name -> imgui-bundle's enum class (Dear ImGui's ImGuiXxx_ enums).
FLAG_TABLES = {
    "ImGuiWindowFlags": "WindowFlags_", "ImGuiCol": "Col_", "ImGuiCond": "Cond_",
    "ImGuiStyleVar": "StyleVar_", "ImGuiTreeNodeFlags": "TreeNodeFlags_",
    "ImGuiSelectableFlags": "SelectableFlags_", "ImGuiInputTextFlags": "InputTextFlags_",
    "ImGuiColorEditFlags": "ColorEditFlags_", "ImGuiComboFlags": "ComboFlags_",
    "ImGuiHoveredFlags": "HoveredFlags_", "ImGuiFocusedFlags": "FocusedFlags_",
    "ImGuiPopupFlags": "PopupFlags_", "ImGuiTabBarFlags": "TabBarFlags_",
    "ImGuiTabItemFlags": "TabItemFlags_", "ImGuiSliderFlags": "SliderFlags_",
    "ImGuiTableFlags": "TableFlags_", "ImGuiTableColumnFlags": "TableColumnFlags_",
    "ImGuiTableRowFlags": "TableRowFlags_", "ImGuiTableBgTarget": "TableBgTarget_",
    "ImGuiMouseButton": "MouseButton_", "ImGuiDir": "Dir_", "ImGuiChildFlags": "ChildFlags_",
    "ImGuiItemFlags": "ItemFlags_", "ImDrawFlags": "ImDrawFlags_", "ImGuiKey": "Key",
}
