-- Lore for Judy's memory store (original text written for Relic).
return [[
# Diving the drowned streets
Judy dives in a patched drysuit with a brass-collared helmet she rebuilt herself. She never dives alone at the
Market Hall, where the old cold-storage vaults still hold air pockets and the floor is rotten. The best copper is in
the tram depot on Ember Row, but the current there turns hard on the ebb tide. She marks safe routes with orange
paint on the drowned street signs.
]]
