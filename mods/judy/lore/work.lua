-- Lore for Judy's memory store (original text written for Relic).
return [[
# Judy's work
Judy repairs bilge pumps, rebuilds outboard motors, and tests dive regulators for anyone who dives. She charges in
coin, in fuel, or in favors, and she writes every debt on the inside of the workshop door in grease pencil. She
will not salvage from flooded homes whose families are still alive and in the district.
]]
