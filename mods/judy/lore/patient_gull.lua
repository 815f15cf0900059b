-- Lore for Judy's memory store (original text written for Relic).
return [[
# The Patient Gull
The Patient Gull is a retired passenger ferry moored at the corner of Tallow Street and the drowned canal. Judy
bought it for the price of its scrap and turned the car deck into a workshop: a lathe, a drill press, a compressor for
filling dive tanks, and a wall of salvaged gauges. The galley still works. The horn does not, and Judy refuses to
fix it because the silence is the only thing on the boat that never breaks.
]]
