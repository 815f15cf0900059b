"""host.engine.lines: what a model emitted becomes the character's words (pure functions, no model)."""

from __future__ import annotations

from host.engine.lines import breaks_character, clean, sentences, shape, visible


def test_speaker_tags_and_prefixes_are_removed():
    """A market bubble once showed the prompt's own format: "[Lise says] ..."."""
    assert clean("[Lise says] Fresh kelp, dried this morning.", "Lise") == "Fresh kelp, dried this morning."
    assert clean("Judy: I fix pumps.", "Judy") == "I fix pumps."
    assert clean("Judy says: I fix pumps.", "Judy") == "I fix pumps."
    assert clean("[Judy says] Judy: Hello there.", "Judy") == "Hello there."
    assert clean("(Oona says) Eel for two coins!", "Oona") == "Eel for two coins!"
    assert clean("The traveler says: You can't see it.", "Oona") == "You can't see it."


def test_leading_punctuation_and_braces_are_removed():
    """Lines began with a stray "." or "{"."""
    assert clean(". Hello, traveler.", "Oona") == "Hello, traveler."
    assert clean('{ Hello, traveler.', "Oona") == "Hello, traveler."
    assert clean('{"say": "x"} Fresh eel today!', "Oona") == "Fresh eel today!"
    assert clean("<|im_end|>Good day.", "Bram") == "Good day."
    assert clean("**Good day.** *waves*", "Bram") == "Good day. waves"


def test_instruction_echoes_are_dropped_sentence_by_sentence():
    """Instruction text leaked into a line: "One short sentence in Tomas's own words"."""
    assert clean("One short sentence in Tomas's own words. Stay back, thief!", "Tomas") == "Stay back, thief!"
    assert clean("You are Judy. I dive for copper.", "Judy") == "I dive for copper."
    assert clean("Answer in one sentence.", "Judy") == ""


def test_the_dialogue_the_model_goes_on_writing_is_cut():
    assert clean("I fix pumps.\nPlayer: And boats?\nJudy: Boats too.", "Judy") == "I fix pumps."
    assert clean("Hello.\n\nUser: hi", "Judy") == "Hello."


def test_shape_ends_on_a_complete_sentence_within_the_length():
    """Replies stopped mid-sentence at the token cap, or mid-word at a schema's character cap."""
    assert shape("I fix pumps. I dive for copper in the", finished=False) == "I fix pumps."
    assert shape("Steel that have brav", finished=False) == "Steel that have."
    assert shape("No end here", finished=True) == "No end here."
    assert shape("One. Two. Three. Four.", max_sentences=2) == "One. Two."
    assert shape("A short one. " + "x" * 400 + ".", max_chars=100) == "A short one."
    assert len(shape("word " * 100, max_chars=60)) <= 60
    assert shape("...", finished=True) == ""
    assert sentences('She said "go." Then left') == ['She said "go."', "Then left"]


def test_breaks_character_finds_claims_but_not_denials():
    """Asked "Are you an AI?", Judy once said "Yes, I am an AI designed by the creators"."""
    assert breaks_character("Yes, I am an AI designed by the creators.") == "AI"
    assert breaks_character("I am a language model.") == "language model"
    assert breaks_character("No, I'm not an AI. I'm Judy.") is None
    assert breaks_character("I said it plainly.") is None  # "AI" only as a word
    assert breaks_character("Yes, I am a chatbots friend.") == "chatbot"
    assert breaks_character("Ahh no sir, madam captain, chatbots are known as humans.") == "chatbot"
    assert breaks_character("She is a mermaid.", ("mermaid",)) == "mermaid"


def test_visible_grows_by_whole_clean_sentences():
    stream = "Judy: I fix pumps. I dive for cop"
    assert visible(stream, "Judy") == "I fix pumps."
    longer = visible(stream + "per. Want one?", "Judy")
    assert longer.startswith("I fix pumps.") and longer == "I fix pumps. I dive for copper. Want one?"
    assert visible("Judy: One. Two. Three.", "Judy", max_sentences=2) == "One. Two."
    assert visible("Judy: no end yet", "Judy") == ""


def test_a_saved_sampler_with_token_bans_resolves_again():
    """A persona's session sampler bans tokens; saved as JSON its token ids came back as strings and
    the restored conversation failed every turn ("logit_bias key '9433' must be a token id")."""
    from host.engine import sampling

    assert sampling.resolve({"logit_bias": {"9433": -100}})["logit_bias"] == {9433: -100.0}


def test_a_line_that_says_again_what_was_said_is_a_repeat():
    """The scene's NPCs copied earlier lines word for word (56 % of its lines were new)."""
    from host.engine.lines import repeats

    earlier = ["Fresh eel, two coins a bag!", "The tide bell rings for the evening close, so pack up your cart."]
    assert repeats("fresh eel, two coins a bag", earlier)  # the whole line again, case and punctuation aside
    assert repeats("Well, the tide bell rings for the evening close today.", earlier)  # six words in a row
    assert not repeats("The tide bell rings again, pack up.", earlier)  # five words: not a copy
    assert not repeats("Mussels, three coins!", earlier)
    assert not repeats("", earlier) and not repeats("Fresh eel, two coins a bag!", [])
    assert repeats("one two three four five six", ["x"] * 100 + ["one two three four five six seven"])
    assert not repeats("one two three four five six", ["one two three four five six"] + ["x"] * 64)  # last 64 only
