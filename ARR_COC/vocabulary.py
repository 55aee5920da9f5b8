"""The words of the synthetic visual-question task: one home for them.

The tiny backbone's tokenizer reads and says exactly these (plus the chat
roles), and the synthetic task draws and asks about them; both import this
module, so a word added for a new question kind cannot be missing from the
tokenizer. It lives in //ARR_COC (not Training) because the backbone needs it
and Training depends on ARR_COC, not the other way round.

The order is part of the tiny tokenizer: token ids follow it.
"""

CHAT_ROLES = ("user", "assistant")
QUESTION_WORDS = ("what", "colour", "color", "shape", "is", "the", "of", "which", "object", "?")
# The colours the task draws, with their RGB; then colour words it can say but never draws.
COLOURS = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230),
    "yellow": (230, 220, 50), "purple": (160, 60, 200), "orange": (240, 140, 30),
}
OTHER_COLOUR_WORDS = ("white", "cyan")
SHAPES = ("square", "circle", "triangle", "cross")
YES_NO = ("yes", "no")
POSITION_WORDS = ("top", "bottom", "left", "right", "centre", "where")
# One word per corner cell, so the position question's naming word is a single token.
CORNERS = ("topleft", "topright", "bottomleft", "bottomright")

TINY_WORDS = (CHAT_ROLES + QUESTION_WORDS + tuple(COLOURS) + OTHER_COLOUR_WORDS + SHAPES + YES_NO
              + POSITION_WORDS + CORNERS)
