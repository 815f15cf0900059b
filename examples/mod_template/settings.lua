-- Settings for the template mod; a module returns a table and defines no globals.
return {
  who = "the player",
}
