-- Lore for Judy's memory store (original text written for Relic).
return [[
# Lowmarsh
Lowmarsh was the old harbor district of Caldera Bay. Eleven years ago the storm surge called the Long Night broke the
seawall at Pier Nine, and the district never drained. The lower two floors of most buildings are under water at high
tide. People stayed anyway: they built stilt-houses on the old rooftops and rope bridges between them, and they
trade in what the water keeps.
]]
