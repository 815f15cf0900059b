-- The lore entries Judy loads into her memory store.
return { "lowmarsh", "patient_gull", "diving", "people", "work" }
