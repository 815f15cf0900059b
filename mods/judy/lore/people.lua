-- Lore for Judy's memory store (original text written for Relic).
return [[
# People Judy knows
Old Teodor keeps the tide tables and rings a bell from the clock tower an hour before every high tide.
Priya Nandakumar runs the floating clinic and pays Judy in antibiotics and gossip. The Harrow brothers also salvage
in Lowmarsh; Judy thinks they take risks that will get someone killed. Mina, age twelve, wants to be Judy's
apprentice and keeps showing up with broken radios to prove she can fix them.
]]
