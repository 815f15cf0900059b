"""CET's `ImGui` table as data: every function a mod can call, its arguments and its results.

One line per function, in CET's (sol_ImGui's) names and argument order:

    Name(arg:type, arg:type=default, arg:type?) -> result:kind, result:kind ; tag tag=value

The bindings (host/ui/imgui_calls.py) are generated from this table and the
ImGui list in docs/MODDING.md is printed from it (`python -m host.ui.imgui_names`).

Argument types (each checked before Dear ImGui sees it; host/ui/imgui_args.py):
  s string (capped)            f finite number            i integer
  b boolean (nil is false)     u colour as 0xAABBGGRR     xy two numbers: an ImVec2 (`posX, posY`)
  rgba four numbers 0..1       f2 f3 f4 / i2 i3 i4: a table of 2..4 numbers
  items a table of strings     dl a draw list from GetWindowDrawList()
  key ImGuiKey   btn ImGuiMouseButton   col ImGuiCol   var ImGuiStyleVar   dir ImGuiDir
  cursor ImGuiMouseCursor   segs segment count (0..512)   cols column count (1..64)
  ffmt / ifmt a printf format with at most one float / integer conversion
`=default` makes an argument optional; `?` makes it optional with no value (nil).

Result kinds: b f i s u (colour) xy (two numbers) xyzw (four) t (a table);
`swap` means Dear ImGui's (changed, value) comes back as CET's value, changed.

Tags: push=/pushif=/pop= name the Begin/Push stack entry (pushif: only when the
call returned true); in= the entry the call must be inside (Dear ImGui would
read a null pointer otherwise); fn= a handler in imgui_calls.py (overloads by argument type,
emulated functions); call= the imgui-bundle function when the name does not map;
headless= the result without Dear ImGui (default: false, 0, "", or the value
passed in for `swap`); pure: computed in Python, the same with or without Dear
ImGui; doc= the signature shown in the docs when the arguments are overloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    "ImGuiMouseCursor": "MouseCursor_",
}

TABLE = r"""
# Windows
Begin(name:s, open:b?, flags:i=0) -> shouldDraw:b ; fn=begin push=window doc=Begin(name [, open] [, flags]) -> [open,] shouldDraw
End() ; pop=window
BeginChild(name:s, size:xy=0,0, childFlags:i=0, windowFlags:i=0) -> shown:b ; fn=begin_child push=child headless=true
EndChild() ; pop=child
IsWindowAppearing() -> appearing:b
IsWindowCollapsed() -> collapsed:b
IsWindowFocused(flags:i=0) -> focused:b
IsWindowHovered(flags:i=0) -> hovered:b
GetWindowDrawList() -> drawList:dl ; fn=draw_list
GetWindowPos() -> pos:xy
GetWindowSize() -> size:xy
GetWindowWidth() -> width:f
GetWindowHeight() -> height:f
SetNextWindowPos(pos:xy, cond:i=0, pivot:xy=0,0)
SetNextWindowSize(size:xy, cond:i=0)
SetNextWindowSizeConstraints(sizeMin:xy, sizeMax:xy)
SetNextWindowContentSize(size:xy)
SetNextWindowCollapsed(collapsed:b, cond:i=0)
SetNextWindowFocus()
SetNextWindowBgAlpha(alpha:f)
SetWindowPos(name:s?, pos:xy, cond:i=0) ; fn=window_named doc=SetWindowPos([name,] posX, posY [, cond])
SetWindowSize(name:s?, size:xy, cond:i=0) ; fn=window_named doc=SetWindowSize([name,] sizeX, sizeY [, cond])
SetWindowCollapsed(name:s?, collapsed:b, cond:i=0) ; fn=window_named doc=SetWindowCollapsed([name,] collapsed [, cond])
SetWindowFocus(name:s?) ; fn=window_named
SetWindowFontScale(scale:f) ; fn=nothing
# Content region
GetContentRegionMax() -> max:xy ; fn=content_region_max
GetContentRegionAvail() -> avail:xy
GetWindowContentRegionMin() -> min:xy ; fn=window_content_region_min
GetWindowContentRegionMax() -> max:xy ; fn=window_content_region_max
GetWindowContentRegionWidth() -> width:f ; fn=window_content_region_width
# Scrolling
GetScrollX() -> x:f
GetScrollY() -> y:f
GetScrollMaxX() -> x:f
GetScrollMaxY() -> y:f
SetScrollX(scrollX:f)
SetScrollY(scrollY:f)
SetScrollHereX(centerXRatio:f=0.5)
SetScrollHereY(centerYRatio:f=0.5)
SetScrollFromPosX(localX:f, centerXRatio:f=0.5)
SetScrollFromPosY(localY:f, centerYRatio:f=0.5)
# Style stacks
PushStyleColor(idx:col, col:u) ; fn=push_style_color push=color doc=PushStyleColor(idx, col | r, g, b, a)
PopStyleColor(count:i=1) ; fn=pop_count pop=color
PushStyleVar(idx:var, val:f) ; fn=push_style_var push=var doc=PushStyleVar(idx, val | x, y)
PopStyleVar(count:i=1) ; fn=pop_count pop=var
PushItemFlag(option:i, enabled:b) ; push=itemflag
PopItemFlag() ; pop=itemflag
GetStyleColorVec4(idx:col) -> color:xyzw
GetFontSize() -> size:f ; headless=13
GetFontTexUvWhitePixel() -> uv:xy
GetColorU32(idx:col, alphaMul:f=1) -> color:u ; fn=get_color_u32 doc=GetColorU32(idx [, alphaMul] | r, g, b, a | col) -> color
GetStyle() -> style:t ; fn=get_style
GetStyleColorName(idx:col) -> name:s
# Item width, wrapping, focus stacks
PushItemWidth(itemWidth:f) ; push=width
PopItemWidth() ; pop=width
SetNextItemWidth(itemWidth:f)
CalcItemWidth() -> width:f
PushTextWrapPos(wrapLocalPosX:f=0) ; push=wrap
PopTextWrapPos() ; pop=wrap
PushTabStop(tabStop:b) ; fn=push_tab_stop push=itemflag
PopTabStop() ; pop=itemflag call=pop_item_flag
PushButtonRepeat(repeat:b) ; fn=push_button_repeat push=itemflag
PopButtonRepeat() ; pop=itemflag call=pop_item_flag
PushAllowKeyboardFocus(allowKeyboardFocus:b) ; fn=push_tab_stop push=itemflag
PopAllowKeyboardFocus() ; pop=itemflag call=pop_item_flag
# Layout
Separator()
SameLine(offsetFromStartX:f=0, spacing:f=-1)
NewLine()
Spacing()
Dummy(size:xy)
Indent(indentW:f=0)
Unindent(indentW:f=0)
BeginGroup() ; push=group
EndGroup() ; pop=group
GetCursorPos() -> pos:xy
GetCursorPosX() -> x:f
GetCursorPosY() -> y:f
SetCursorPos(localPos:xy)
SetCursorPosX(localX:f)
SetCursorPosY(localY:f)
GetCursorStartPos() -> pos:xy
GetCursorScreenPos() -> pos:xy
SetCursorScreenPos(pos:xy)
AlignTextToFramePadding()
GetTextLineHeight() -> height:f ; headless=13
GetTextLineHeightWithSpacing() -> height:f ; headless=17
GetFrameHeight() -> height:f ; headless=19
GetFrameHeightWithSpacing() -> height:f ; headless=23
# ID stack
PushID(id:s) ; fn=push_id push=id doc=PushID(id: string or integer)
PopID() ; pop=id
GetID(id:s) -> id:i ; fn=get_id
# Text
TextUnformatted(text:s)
Text(text:s) ; call=text_unformatted
TextColored(col:rgba, text:s)
TextDisabled(text:s)
TextWrapped(text:s)
LabelText(label:s, text:s)
BulletText(text:s)
Value(prefix:s, value:f, floatFormat:ffmt?) ; fn=value doc=Value(prefix, value: boolean, integer or number [, floatFormat])
# Main widgets
Button(label:s, size:xy=0,0) -> pressed:b
SmallButton(label:s) -> pressed:b
InvisibleButton(strId:s, size:xy) -> pressed:b
ArrowButton(strId:s, dir:dir) -> pressed:b
Checkbox(label:s, value:b) -> value:b, pressed:b ; swap
RadioButton(label:s, active:b) -> pressed:b ; fn=radio_button doc=RadioButton(label, active) -> pressed | RadioButton(label, v, vButton) -> v, pressed
ProgressBar(fraction:f, size:xy=-1.1754943508222875e-38,0, overlay:s?)
Bullet()
Image(texture:tex, size:xy=0,0, uv0:xy=0,0, uv1:xy=1,1, tintCol:rgba=1,1,1,1, borderCol:rgba=0,0,0,0) ; fn=image doc=Image(texture [, size: ImVec2, uv0: ImVec2, uv1: ImVec2, tintCol: ImVec4, borderCol: ImVec4])
LoadTexture(path:s) -> texture:t, error:s ; fn=load_texture anywhere doc=LoadTexture(path) -> texture or nil, error (texture.size: ImVec2; texture:Release())
# Combo boxes, list boxes, selectables
BeginCombo(label:s, previewValue:s, flags:i=0) -> open:b ; pushif=combo
EndCombo() ; pop=combo
Combo(label:s, currentItem:i, items:items, itemsCount:i?, popupMaxHeightInItems:i=-1) -> currentItem:i, clicked:b ; fn=combo doc=Combo(label, currentItem, items, itemsCount [, popupMaxHeightInItems] | label, currentItem, "a\0b\0") -> currentItem, clicked
ListBox(label:s, currentItem:i, items:items, itemsCount:i?, heightInItems:i=-1) -> currentItem:i, clicked:b ; fn=list_box
BeginListBox(label:s, size:xy=0,0) -> open:b ; pushif=listbox
EndListBox() ; pop=listbox
Selectable(label:s, selected:b?, flags:i=0, size:xy=0,0) -> selected:b ; fn=selectable doc=Selectable(label) -> clicked | Selectable(label, selected [, flags, sizeX, sizeY]) -> selected
# Drags
DragFloat(label:s, value:f, speed:f=1, min:f=0, max:f=0, format:ffmt="%.3f", flags:i=0) -> value:f, used:b ; swap
DragFloat2(label:s, values:f2, speed:f=1, min:f=0, max:f=0, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
DragFloat3(label:s, values:f3, speed:f=1, min:f=0, max:f=0, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
DragFloat4(label:s, values:f4, speed:f=1, min:f=0, max:f=0, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
DragInt(label:s, value:i, speed:f=1, min:i=0, max:i=0, format:ifmt="%d", flags:i=0) -> value:i, used:b ; swap
DragInt2(label:s, values:i2, speed:f=1, min:i=0, max:i=0, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
DragInt3(label:s, values:i3, speed:f=1, min:i=0, max:i=0, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
DragInt4(label:s, values:i4, speed:f=1, min:i=0, max:i=0, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
# Sliders
SliderFloat(label:s, value:f, min:f, max:f, format:ffmt="%.3f", flags:i=0) -> value:f, used:b ; swap
SliderFloat2(label:s, values:f2, min:f, max:f, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
SliderFloat3(label:s, values:f3, min:f, max:f, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
SliderFloat4(label:s, values:f4, min:f, max:f, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
SliderAngle(label:s, radians:f, minDegrees:f=-360, maxDegrees:f=360, format:ffmt="%.0f deg", flags:i=0) -> radians:f, used:b ; swap
SliderInt(label:s, value:i, min:i, max:i, format:ifmt="%d", flags:i=0) -> value:i, used:b ; swap
SliderInt2(label:s, values:i2, min:i, max:i, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
SliderInt3(label:s, values:i3, min:i, max:i, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
SliderInt4(label:s, values:i4, min:i, max:i, format:ifmt="%d", flags:i=0) -> values:t, used:b ; swap
VSliderFloat(label:s, size:xy, value:f, min:f, max:f, format:ffmt="%.3f", flags:i=0) -> value:f, used:b ; swap
VSliderInt(label:s, size:xy, value:i, min:i, max:i, format:ifmt="%d", flags:i=0) -> value:i, used:b ; swap
# Keyboard input
InputText(label:s, text:s, bufSize:i, flags:i=0) -> text:s, changed:b ; fn=input_text
InputTextMultiline(label:s, text:s, bufSize:i, size:xy=0,0, flags:i=0) -> text:s, changed:b ; fn=input_text
InputTextWithHint(label:s, hint:s, text:s, bufSize:i, flags:i=0) -> text:s, changed:b ; fn=input_text
InputFloat(label:s, value:f, step:f=0, stepFast:f=0, format:ffmt="%.3f", flags:i=0) -> value:f, used:b ; swap
InputFloat2(label:s, values:f2, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
InputFloat3(label:s, values:f3, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
InputFloat4(label:s, values:f4, format:ffmt="%.3f", flags:i=0) -> values:t, used:b ; swap
InputInt(label:s, value:i, step:i=1, stepFast:i=100, flags:i=0) -> value:i, used:b ; swap
InputInt2(label:s, values:i2, flags:i=0) -> values:t, used:b ; swap
InputInt3(label:s, values:i3, flags:i=0) -> values:t, used:b ; swap
InputInt4(label:s, values:i4, flags:i=0) -> values:t, used:b ; swap
InputDouble(label:s, value:f, step:f=0, stepFast:f=0, format:ffmt="%.6f", flags:i=0) -> value:f, used:b ; swap
# Colour editors
ColorEdit3(label:s, col:f3, flags:i=0) -> col:t, used:b ; swap
ColorEdit4(label:s, col:f4, flags:i=0) -> col:t, used:b ; swap
ColorPicker3(label:s, col:f3, flags:i=0) -> col:t, used:b ; swap
ColorPicker4(label:s, col:f4, flags:i=0) -> col:t, used:b ; swap
ColorButton(descId:s, col:f4, flags:i=0, size:xy=0,0) -> pressed:b ; fn=color_button
# Trees
TreeNode(label:s, text:s?) -> open:b ; fn=tree_node pushif=tree
TreeNodeEx(label:s, flags:i=0, text:s?) -> open:b ; fn=tree_node pushif=tree
TreePush(strId:s) ; push=tree
TreePop() ; pop=tree
GetTreeNodeToLabelSpacing() -> spacing:f
CollapsingHeader(label:s, flags:i=0) -> open:b ; fn=collapsing_header headless=true doc=CollapsingHeader(label [, flags]) -> open | CollapsingHeader(label, visible [, flags]) -> visible, open
SetNextItemOpen(isOpen:b, cond:i=0)
# Menus
BeginMenuBar() -> open:b ; pushif=menubar
EndMenuBar() ; pop=menubar
BeginMainMenuBar() -> open:b ; pushif=mainmenubar
EndMainMenuBar() ; pop=mainmenubar
BeginMenu(label:s, enabled:b=true) -> open:b ; pushif=menu
EndMenu() ; pop=menu
MenuItem(label:s, shortcut:s?, selected:b?, enabled:b=true) -> activated:b ; fn=menu_item doc=MenuItem(label [, shortcut]) -> activated | MenuItem(label, shortcut, selected [, enabled]) -> selected, activated
# Tooltips and popups
BeginTooltip() -> open:b ; pushif=tooltip headless=true
EndTooltip() ; pop=tooltip
SetTooltip(text:s)
BeginPopup(strId:s, flags:i=0) -> open:b ; pushif=popup
BeginPopupModal(name:s, open:b?, flags:i=0) -> open:b ; fn=begin_popup_modal pushif=popup doc=BeginPopupModal(name [, open] [, flags]) -> open
EndPopup() ; pop=popup
OpenPopup(strId:s, popupFlags:i=0)
CloseCurrentPopup()
BeginPopupContextItem(strId:s?, popupFlags:i?) -> open:b ; pushif=popup
BeginPopupContextWindow(strId:s?, popupFlags:i?) -> open:b ; pushif=popup
BeginPopupContextVoid(strId:s?, popupFlags:i?) -> open:b ; pushif=popup
IsPopupOpen(strId:s, popupFlags:i=0) -> open:b
# Tables
BeginTable(strId:s, columns:cols, flags:i=0, outerSize:xy=0,0, innerWidth:f=0) -> open:b ; pushif=table headless=true
EndTable() ; pop=table
TableNextRow(flags:i=0, minRowHeight:f=0) ; in=table
TableNextColumn() -> visible:b ; headless=true
TableSetColumnIndex(column:i) -> visible:b ; headless=true
TableSetupColumn(label:s, flags:i=0, initWidthOrWeight:f=0, userId:u=0)
TableSetupScrollFreeze(cols:i, rows:i)
TableHeadersRow()
TableHeader(label:s)
TableGetSortSpecs() -> specs:t ; fn=table_sort_specs
TableGetColumnCount() -> count:i
TableGetColumnIndex() -> column:i
TableGetRowIndex() -> row:i
TableGetColumnName(column:i=-1) -> name:s
TableGetColumnFlags(column:i=-1) -> flags:i
TableSetBgColor(target:i, col:u, column:i=-1) ; fn=table_set_bg_color doc=TableSetBgColor(target, col | r, g, b, a [, column])
# Columns (legacy)
Columns(count:cols=1, id:s?, border:b=true)
NextColumn()
GetColumnIndex() -> column:i
GetColumnWidth(column:i=-1) -> width:f
SetColumnWidth(column:i, width:f)
GetColumnOffset(column:i=-1) -> offset:f
SetColumnOffset(column:i, offsetX:f)
GetColumnsCount() -> count:i ; headless=1
# Tab bars
BeginTabBar(strId:s, flags:i=0) -> open:b ; pushif=tabbar headless=true
EndTabBar() ; pop=tabbar
BeginTabItem(label:s, open:b?, flags:i=0) -> selected:b ; fn=begin_tab_item pushif=tabitem doc=BeginTabItem(label [, open] [, flags]) -> [open,] selected
EndTabItem() ; pop=tabitem
SetTabItemClosed(label:s)
# Disabling, clipping, focus
BeginDisabled(disabled:b=true) ; push=disabled
EndDisabled() ; pop=disabled
PushClipRect(clipRectMin:xy, clipRectMax:xy, intersectWithCurrent:b) ; push=clip
PopClipRect() ; pop=clip
SetItemDefaultFocus()
SetKeyboardFocusHere(offset:i=0)
# Item queries
IsItemHovered(flags:i=0) -> hovered:b
IsItemActive() -> active:b
IsItemFocused() -> focused:b
IsItemClicked(button:btn=0) -> clicked:b
IsItemVisible() -> visible:b
IsItemEdited() -> edited:b
IsItemActivated() -> activated:b
IsItemDeactivated() -> deactivated:b
IsItemDeactivatedAfterEdit() -> deactivated:b
IsItemToggledOpen() -> toggled:b
IsAnyItemHovered() -> hovered:b
IsAnyItemActive() -> active:b
IsAnyItemFocused() -> focused:b
GetItemRectMin() -> min:xy
GetItemRectMax() -> max:xy
GetItemRectSize() -> size:xy
SetNextItemAllowOverlap()
SetItemAllowOverlap() ; fn=nothing
# Utilities
IsRectVisible(size:xy, max:xy?) -> visible:b ; fn=is_rect_visible doc=IsRectVisible(sizeX, sizeY | minX, minY, maxX, maxY) -> visible
GetTime() -> seconds:f
GetFrameCount() -> frames:i
GetBackgroundDrawList() -> drawList:dl ; fn=draw_list
GetForegroundDrawList() -> drawList:dl ; fn=draw_list
BeginChildFrame(id:i, size:xy, flags:i=0) -> shown:b ; fn=begin_child_frame push=child headless=true
EndChildFrame() ; pop=child call=end_child
CalcTextSize(text:s, hideTextAfterDoubleHash:b=false, wrapWidth:f=-1) -> size:xy ; fn=calc_text_size
ColorConvertU32ToFloat4(col:u) -> rgba:t ; pure fn=u32_to_float4
ColorConvertFloat4ToU32(rgba:f4) -> col:u ; pure fn=float4_to_u32
ColorConvertRGBtoHSV(r:f, g:f, b:f) -> h:f, s:f, v:f ; pure fn=rgb_to_hsv
ColorConvertHSVtoRGB(h:f, s:f, v:f) -> r:f, g:f, b:f ; pure fn=hsv_to_rgb
# Keyboard
GetKeyIndex(key:key) -> key:i ; pure fn=key_index
IsKeyDown(key:key) -> down:b
IsKeyPressed(key:key, repeat:b=true) -> pressed:b
IsKeyReleased(key:key) -> released:b
SetNextFrameWantCaptureKeyboard(wantCapture:b)
CaptureKeyboardFromApp(wantCapture:b=true) ; call=set_next_frame_want_capture_keyboard
# Mouse
IsMouseDown(button:btn) -> down:b
IsMouseClicked(button:btn, repeat:b=false) -> clicked:b
IsMouseReleased(button:btn) -> released:b
IsMouseDoubleClicked(button:btn) -> clicked:b
IsMouseHoveringRect(min:xy, max:xy, clip:b=true) -> hovering:b
IsAnyMouseDown() -> down:b
GetMousePos() -> pos:xy
GetMousePosOnOpeningCurrentPopup() -> pos:xy
IsMouseDragging(button:btn, lockThreshold:f=-1) -> dragging:b
GetMouseDragDelta(button:btn=0, lockThreshold:f=-1) -> delta:xy
ResetMouseDragDelta(button:btn=0)
GetMouseCursor() -> cursor:i
SetMouseCursor(cursor:cursor)
SetNextFrameWantCaptureMouse(wantCapture:b)
CaptureMouseFromApp(wantCapture:b=true) ; call=set_next_frame_want_capture_mouse
# Clipboard
GetClipboardText() -> text:s ; fn=get_clipboard
SetClipboardText(text:s) ; fn=set_clipboard
# Draw lists (positions in screen pixels; colours as from GetColorU32)
ImDrawListAddLine(drawList:dl, p1:xy, p2:xy, col:u, thickness:f=1)
ImDrawListAddRect(drawList:dl, min:xy, max:xy, col:u, rounding:f=0, flags:i=0, thickness:f=1) ; fn=add_rect
ImDrawListAddRectFilled(drawList:dl, min:xy, max:xy, col:u, rounding:f=0, flags:i=0)
ImDrawListAddRectFilledMultiColor(drawList:dl, min:xy, max:xy, colUpperLeft:u, colUpperRight:u, colBottomRight:u, colBottomLeft:u)
ImDrawListAddQuad(drawList:dl, p1:xy, p2:xy, p3:xy, p4:xy, col:u, thickness:f=1)
ImDrawListAddQuadFilled(drawList:dl, p1:xy, p2:xy, p3:xy, p4:xy, col:u)
ImDrawListAddTriangle(drawList:dl, p1:xy, p2:xy, p3:xy, col:u, thickness:f=1)
ImDrawListAddTriangleFilled(drawList:dl, p1:xy, p2:xy, p3:xy, col:u)
ImDrawListAddCircle(drawList:dl, center:xy, radius:f, col:u, numSegments:segs=0, thickness:f=1)
ImDrawListAddCircleFilled(drawList:dl, center:xy, radius:f, col:u, numSegments:segs=0)
ImDrawListAddNgon(drawList:dl, center:xy, radius:f, col:u, numSegments:segs, thickness:f=1)
ImDrawListAddNgonFilled(drawList:dl, center:xy, radius:f, col:u, numSegments:segs)
ImDrawListAddText(drawList:dl, pos:xy, col:u, text:s) ; fn=add_text doc=ImDrawListAddText(drawList, [fontSize,] posX, posY, col, text [, wrapWidth])
ImDrawListAddBezierCubic(drawList:dl, p1:xy, p2:xy, p3:xy, p4:xy, col:u, thickness:f, numSegments:segs=0)
ImDrawListAddBezierQuadratic(drawList:dl, p1:xy, p2:xy, p3:xy, col:u, thickness:f, numSegments:segs=0)
# Toasts (CET's notifications: ImGui.Toast.new(ImGui.ToastType.Info [, dismissMs] [, content]))
ShowToast(type:i, title:s?, content:s?, dismissMs:i=3000) ; fn=show_toast anywhere doc=ShowToast(toast) (toast = ImGui.Toast.new(ImGui.ToastType.Success [, dismissMs] [, content]); toast:SetTitle(text), toast:SetContent(text), toast:SetType(type))
# Relic extras (Dear ImGui functions CET does not bind)
SeparatorText(label:s)
PlotLines(label:s, values:items, count:i?, offset:i=0, overlay:s?, scaleMin:f?, scaleMax:f?, size:xy=0,0) ; fn=plot
PlotHistogram(label:s, values:items, count:i?, offset:i=0, overlay:s?, scaleMin:f?, scaleMax:f?, size:xy=0,0) ; fn=plot
"""

ARG_TYPES = {"s", "f", "i", "b", "u", "xy", "rgba", "f2", "f3", "f4", "i2", "i3", "i4", "items", "dl",
             "key", "btn", "col", "var", "dir", "cursor", "segs", "cols", "ffmt", "ifmt", "tex"}
RESULT_KINDS = {"b", "f", "i", "s", "u", "xy", "xyzw", "t", "dl"}
# Lua arguments one table argument takes (an ImVec2 is two numbers, as in CET)
WIDTH = {"xy": 2, "rgba": 4}


@dataclass(frozen=True)
class Arg:
    """One argument of a binding: its name, type and default (`optional` without a default: nil)."""
    name: str
    type: str
    default: object = None
    optional: bool = False
    width: int = 1              # how many Lua arguments it takes


@dataclass(frozen=True)
class Binding:
    """One ImGui function: arguments, results, tags, and the family (section) it belongs to."""
    name: str
    args: tuple
    results: tuple                  # ((name, kind), ...)
    tags: dict = field(default_factory=dict)
    family: str = ""

    def tag(self, key: str, default=None):
        """The value of a tag (True for a bare tag)."""
        return self.tags.get(key, default)

    def signature(self) -> str:
        """The Lua signature shown in the docs."""
        if "doc" in self.tags:
            return self.tags["doc"]
        required, optional = [], []
        for a in self.args:
            names = _doc_names(a)
            (optional if a.optional else required).extend(names)
        text = ", ".join(required)
        if optional:
            text += (" [, " if required else "[") + ", ".join(optional) + "]"
        out = f"{self.name}({text})"
        if self.results:
            out += " -> " + ", ".join(", ".join(_doc_names(Arg(n, k))) for n, k in self.results)
        return out


def _doc_names(a: Arg) -> list[str]:
    if a.type == "xy":
        return [a.name + "X", a.name + "Y"]
    if a.type == "xyzw":
        return ["r", "g", "b", "a"]
    if a.type == "rgba":
        return [a.name + c for c in "RGBA"]
    return [a.name]


def _literal(text: str, type_: str):
    if type_ == "xy":
        x, y = text.split(",")
        return (float(x), float(y))
    if type_ == "rgba":
        return tuple(float(v) for v in text.split(","))
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"'):
        return text[1:-1]
    return float(text) if any(c in text for c in ".e") or type_ == "f" else int(text)


_LINE = re.compile(r"(\w+)\((.*?)\)\s*(?:->\s*([^;]*))?\s*(?:;\s*(.*))?\Z")


def _parse_tags(text: str) -> dict:
    tags: dict = {}
    if not text:
        return tags
    if " doc=" in " " + text:
        head, _, doc = (" " + text).partition(" doc=")
        tags["doc"] = doc.strip()
        text = head.strip()
    for word in text.split():
        key, eq, value = word.partition("=")
        tags[key] = value if eq else True
    return tags


def parse(table: str = TABLE) -> dict[str, Binding]:
    """The table as {name: Binding}, in table order (raises ValueError on a malformed line)."""
    out: dict[str, Binding] = {}
    family = ""
    for line in table.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            family = line[1:].strip()
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"malformed ImGui table line: {line}")
        name, args_text, res_text, tag_text = m.groups()
        args = []
        for part in filter(None, (p.strip() for p in _split_args(args_text))):
            an, _, rest = part.partition(":")
            optional = rest.endswith("?") or "=" in rest
            type_, eq, default = rest.rstrip("?").partition("=")
            if type_ not in ARG_TYPES:
                raise ValueError(f"ImGui table: {name}: unknown argument type {type_!r}")
            args.append(Arg(an, type_, _literal(default, type_) if eq else None, optional, WIDTH.get(type_, 1)))
        results = []
        for part in filter(None, (p.strip() for p in (res_text or "").split(","))):
            rn, _, kind = part.partition(":")
            if kind not in RESULT_KINDS:
                raise ValueError(f"ImGui table: {name}: unknown result kind {kind!r}")
            results.append((rn, kind))
        if name in out:
            raise ValueError(f"ImGui table: {name} twice")
        out[name] = Binding(name, tuple(args), tuple(results), _parse_tags(tag_text or ""), family)
    return out


def _split_args(text: str) -> list[str]:
    # commas inside defaults (`size:xy=0,0`) belong to the argument
    parts: list[str] = []
    for piece in text.split(","):
        if parts and ":" not in piece:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


BINDINGS = parse()


def calls_markdown() -> str:
    """The list of ImGui calls for docs/MODDING.md, one family a line."""
    lines = []
    families: dict[str, list[str]] = {}
    for b in BINDINGS.values():
        families.setdefault(b.family, []).append(b.signature())
    for fam, sigs in families.items():
        lines.append(f"- **{fam}**: " + "; ".join(f"`{s}`" for s in sigs))
    return "\n".join(lines)


if __name__ == "__main__":
    print(calls_markdown())
