"""MUStARD clips (utterance + context) x Friends episode transcripts -> the episode of each clip, and a task's Friends
test clips split into seen / unseen episodes given the runs a model was brain-tuned on.

MUStARD's speaker-independent test set is *Friends* clips, and brain-tuning on CNeuroMod / Algonauts 2025 plays the
model Friends episodes (runs ``s01e02a`` .. ``s06e24d``): a test clip from a tuned episode was heard in tuning.
``sarcasm_data.json`` names no episode, so a clip is placed by its words, or by a table the user supplies
(``read_episode_table``: clip id -> episode).

**Matching** (``match_clips``). Words are normalised (``words_of``: lower case, accents and apostrophes dropped so that
"what's" and MUStARD's spelling "whats" agree, any other non-alphanumeric a word break). A clip is the set of distinct
word trigrams of its sentences (each context sentence and the utterance on its own, so that no trigram spans the gap
between two lines). A transcript part scores the largest fraction of those trigrams found inside one passage of
``2 x clip words + WINDOW_SLACK`` consecutive transcript words (local containment, 0..1), and an episode scores the best
of its parts. Why trigrams and not exact sentences or a character edit distance: a transcription difference between
MUStARD and the Algonauts transcripts (a typo, "gonna" / "going to", a dropped "uh") costs only the <= 3 trigrams that
hold the differing word, where an exact sentence match fails on one typo, and word-set lookups keep the search linear
in the transcripts' length (one pass over every part, no pairwise alignment of ~350 clips x ~600 parts). Why a local
passage: a clip of common phrases ("i dont know", "what are you") finds most of its trigrams somewhere in any
12-minute part; it does not find them in one passage of its own length.

Every episode scoring >= ``MATCH_THRESHOLD`` is a match of the clip (several when a scene recurs, e.g. a flashback
episode), and the clip is **seen** when any of them was tuned on. A clip with fewer than ``MIN_NGRAMS`` distinct
trigrams is too short to place: unmatched and **unknown**. Other unmatched clips count as **unseen** only when the
transcripts of every tuned episode were searched (then "no tuned episode holds these words" is what unmatched means);
otherwise they are **unknown** too, and leave both groups. Nothing is dropped: every Friends test clip is in exactly one of
seen / unseen / unknown, and the counts are reported.

**Measured.** MUStARD's 356 Friends clips (``sarcasm_data.json``) against fan transcripts of all 229 episodes (each cut
into four parts, as the Algonauts runs are): 336 placed, 7 too short (< 5 trigrams), 13 unplaced (best scores
0.10-0.49: paraphrased lines), so recall >= 96 % of the placeable clips; 15 placed in several episodes (clip shows
such as s04e21 replaying scenes). False matches: with each clip's own episode(s) removed, the best score elsewhere had
median 0.10, 99th percentile 0.40, maximum 0.46 (0 of 336 at >= 0.5; 5 at >= 0.4, which is why the threshold is 0.5).
Planted clips (``tests/test_contamination.py``; 4 % of words misheard, 2 % dropped): recall 0.93-1.0, precision 1.0.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data.formats.algonauts import TR
from ..data.words import read_transcript_tsv
from ..errors import DataError
from .tasks.mustard import TEST_SHOW

NGRAM = 3  # words per n-gram
MATCH_THRESHOLD = 0.5  # fraction of a clip's distinct trigrams inside one transcript passage for a match
MIN_NGRAMS = 5  # a clip with fewer distinct trigrams is too short to place (unmatched)
WINDOW_SLACK = 20  # passage = 2 x clip words + this many transcript words
METHOD = (f"word {NGRAM}-gram local containment: the fraction of a clip's distinct {NGRAM}-grams (context sentences "
          f"and utterance) found within one passage of 2 x its words + {WINDOW_SLACK} transcript words; a match scores "
          f">= {MATCH_THRESHOLD}")
_EPISODE = re.compile(r"^(?:friends_)?s(?P<season>\d{1,2})e(?P<episode>\d{1,2})(?P<part>[a-z])?$", re.IGNORECASE)
# apostrophes, with the mis-decoded forms of U+2019 seen in sarcasm_data.json ("donÕt": Mac Roman, "Weā€™re")
_APOSTROPHES = re.compile("\u00e2\u20ac\u2122|\u0101\u20ac\u2122|['\u2019\u2018`\u00b4\u00d5]")
_WORD = re.compile(r"[a-z0-9]+")


def _contractions() -> dict[tuple[str, str], str]:
    """Two words -> the contraction they are spoken as, apostrophe dropped ("she is" / "she has" -> "shes"). MUStARD
    writes many Friends lines expanded ("I am gonna die alone", "she has got the whole package") where the
    transcripts have "I'm", "she's": both sides are contracted before matching."""
    table = {("i", "am"): "im", ("can", "not"): "cant", ("cannot",): "cant", ("will", "not"): "wont",
             ("let", "us"): "lets", ("going", "to"): "gonna", ("want", "to"): "wanna", ("got", "to"): "gotta",
             ("all", "right"): "alright", ("ok",): "okay"}
    subjects = "i you he she it we they that there here what who where how when why this".split()
    for x in subjects:
        table.update({(x, "is"): x + "s", (x, "has"): x + "s", (x, "are"): x + "re", (x, "will"): x + "ll",
                      (x, "have"): x + "ve", (x, "would"): x + "d", (x, "had"): x + "d"})
    for v in "is are was were do does did have has had could would should must need might".split():
        table[(v, "not")] = v + "nt"
    return table


_CONTRACT = _contractions()


def words_of(text: str) -> list[str]:
    """Normalised words: ``"What's up, Q-Tip? I am"`` -> ``["whats", "up", "q", "tip", "im"]`` (``_contractions``)."""
    text = unicodedata.normalize("NFKD", _APOSTROPHES.sub("", text)).encode("ascii", "ignore").decode("ascii")
    raw, out, i = _WORD.findall(text.lower()), [], 0
    while i < len(raw):
        pair = tuple(raw[i:i + 2])
        if pair in _CONTRACT:
            out.append(_CONTRACT[pair])
            i += 2
        else:
            out.append(_CONTRACT.get(pair[:1], raw[i]))
            i += 1
    return out


def episode_of(name: str) -> str | None:
    """``s01e02a``, ``friends_s01e02a``, ``S1E2`` -> ``s01e02``; anything that is not a Friends episode -> None."""
    m = _EPISODE.match(name.strip())
    return None if m is None else f"s{int(m['season']):02d}e{int(m['episode']):02d}"


def seen_episodes(runs: list[str]) -> set[str]:
    """The Friends episodes among a model's training runs (Movie10 and other runs are not episodes)."""
    return {e for e in map(episode_of, runs) if e is not None}


@dataclass
class Match:
    """Where one clip comes from. ``score``: the best local containment over the parts that could reach the threshold
    and the part holding most of the clip's n-grams (so an unmatched clip reports how close it came)."""

    clip: str
    episodes: list[str] = field(default_factory=list)  # matched episodes (score >= threshold), best first
    part: str | None = None  # the best-scoring part (run name, e.g. s01e02a)
    score: float = 0.0
    n_grams: int = 0
    source: str = "transcripts"  # or the episode table's path


def clip_grams(sentences: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    """Distinct word n-grams of each sentence (none spans two sentences)."""
    grams: set[tuple[str, ...]] = set()
    for sentence in sentences:
        w = words_of(sentence)
        grams.update(zip(*(w[i:] for i in range(n))))
    return grams


def _best_window(hits: list[tuple[int, tuple]], width: int) -> tuple[int, int]:
    """(position, gram) hits sorted by position -> (the most distinct grams inside any ``width`` consecutive positions,
    the position where that passage ends)."""
    inside: Counter = Counter()
    best, end, lo = 0, 0, 0
    for pos, gram in hits:
        inside[gram] += 1
        while pos - hits[lo][0] >= width:
            old = hits[lo][1]
            inside[old] -= 1
            if not inside[old]:
                del inside[old]
            lo += 1
        if len(inside) > best:
            best, end = len(inside), pos
    return best, end


def _place(clip: str, n_grams: int, width: int, hits: dict[str, list], parts: dict[str, list], threshold: float) -> Match:
    """One clip's hits per episode (positions in the episode's parts joined in order; ``parts``: episode -> [(first
    position, run name)]) -> its Match: the episodes at or above ``threshold``, best first."""
    if n_grams < MIN_NGRAMS:
        return Match(clip, n_grams=n_grams)
    distinct = {episode: len({g for _, g in found}) for episode, found in hits.items()}
    top = max(distinct, key=distinct.get, default=None)  # scanned anyway, so that an unmatched clip has a score
    scored = []
    for episode, found in hits.items():
        if distinct[episode] < threshold * n_grams and episode != top:  # cannot reach the threshold: no window scan
            continue
        count, end = _best_window(sorted(found), width)
        part = [name for first, name in parts[episode] if first <= end][-1]
        scored.append((-count / n_grams, episode, part))
    if not scored:
        return Match(clip, n_grams=n_grams)
    scored.sort()
    return Match(clip, [e for s, e, _ in scored if -s >= threshold], scored[0][2], round(-scored[0][0], 4), n_grams)


def match_clips(clips: dict[str, list[str]], transcripts: dict[str, list[str]],
                threshold: float = MATCH_THRESHOLD) -> dict[str, Match]:
    """Place every clip (id -> sentences, context first, utterance last) in the transcripts (run name -> normalised
    words in spoken order, as ``friends_transcripts`` reads them); one pass over the transcripts. The parts of an
    episode (``s01e02a``, ``s01e02b``, ...) are searched joined in order, so a clip across a part boundary is found.

    Returns clip id -> ``Match`` for every clip; an unplaced clip has no ``episodes``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"match threshold {threshold} is not in (0, 1]")
    grams = {cid: clip_grams(s) for cid, s in clips.items()}
    widths = {cid: 2 * sum(len(words_of(x)) for x in s) + WINDOW_SLACK for cid, s in clips.items()}
    wanted: dict[tuple, list[str]] = defaultdict(list)  # gram -> clips that hold it
    for cid, held in grams.items():
        for gram in held:
            wanted[gram].append(cid)
    parts: dict[str, list] = defaultdict(list)  # episode -> [(first position, run name)]
    hits: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # clip -> episode -> [(position, gram)]
    for run in sorted(transcripts):
        episode, words = episode_of(run) or run, transcripts[run]
        offset = parts[episode][-1][0] + parts[episode][-1][2] if parts[episode] else 0
        parts[episode].append((offset, run, len(words)))
        for pos, gram in enumerate(zip(*(words[i:] for i in range(NGRAM)))):
            for cid in wanted.get(gram, ()):
                hits[cid][episode].append((offset + pos, gram))
    starts = {episode: [(first, run) for first, run, _ in runs] for episode, runs in parts.items()}
    return {cid: _place(cid, len(grams[cid]), widths[cid], hits.get(cid, {}), starts, threshold) for cid in clips}


def friends_transcripts(root: str | Path) -> dict[str, list[str]]:
    """``ROOT/stimuli/transcripts/friends/s{N}/friends_s{NN}e{NN}{a-d}.tsv`` (Algonauts 2025 per-TR transcripts) -> run
    name (``s01e02a``) -> normalised words in spoken order. No such directory -> {}."""
    base = Path(root) / "stimuli" / "transcripts" / "friends"
    out = {}
    for path in sorted(base.glob("s*/friends_s*.tsv")) if base.is_dir() else []:
        run = path.stem.removeprefix("friends_")
        if episode_of(run) is not None:
            out[run] = [w for word in read_transcript_tsv(path, TR) for w in words_of(word.text)]
    return out


def read_episode_table(path: str | Path) -> dict[str, str]:
    """A user's table of clip id -> episode: one ``clip_id<TAB>episode`` (or ``clip_id,episode``) per line, an optional
    header ``clip_id  episode``, blank lines and ``#`` comments skipped. Episodes are written ``s01e02``, ``s01e02a`` or
    ``friends_s01e02a``; returned as ``s01e02``. A bad line is a DataError naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"downstream.episode_table '{path}' cannot be read ({err}); give a UTF-8 text file of "
                        "'clip_id<TAB>episode' lines") from err
    table: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t" if "\t" in line else ",")]
        if number == 1 and len(cells) == 2 and cells[1].lower() == "episode":
            continue  # header
        where = f"downstream.episode_table '{path}' line {number}"
        if len(cells) != 2 or not all(cells):
            raise DataError(f"{where}: {line!r} is not 'clip_id<TAB>episode' (or 'clip_id,episode')")
        episode = episode_of(cells[1])
        if episode is None:
            raise DataError(f"{where}: episode {cells[1]!r} of clip '{cells[0]}' is not a Friends episode; write it "
                            "as s01e02 (season 1, episode 2), s01e02a or friends_s01e02a")
        if table.get(cells[0], episode) != episode:
            raise DataError(f"{where}: clip '{cells[0]}' is given episode {episode} here and {table[cells[0]]} on an "
                            "earlier line; keep one")
        table[cells[0]] = episode
    if not table:
        raise DataError(f"downstream.episode_table '{path}' holds no 'clip_id<TAB>episode' line")
    return table


def friends_clips(root: str | Path, ids: list[str]) -> dict[str, list[str]]:
    """The clips of ``ids`` whose show is Friends in ``ROOT/sarcasm_data.json`` -> their sentences (context, then the
    utterance). The file was validated by the task reader (``tasks.mustard``)."""
    path = Path(root) / "sarcasm_data.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"'{path}' cannot be read for episode matching ({err})") from err
    out = {}
    for cid in ids:
        entry = meta.get(cid) or {}
        if str(entry.get("show", "")).upper() == TEST_SHOW:
            context = entry.get("context") or []
            out[cid] = [str(s) for s in (context if isinstance(context, list) else [context])] + [str(entry["utterance"])]
    return out


@dataclass
class EpisodeSplit:
    """Friends test clips -> seen / unseen / unknown given the ``tuned`` episodes, with the match behind each."""

    matches: dict[str, Match]  # every Friends clip among the test items, placed or not
    searched: set[str]  # episodes whose transcripts were searched
    tuned: set[str] = field(default_factory=set)  # Friends episodes the measured models were tuned on

    @property
    def covered(self) -> bool:
        """Every tuned episode's transcript was searched: an unmatched clip is then from no tuned episode."""
        return bool(self.searched) and self.tuned <= self.searched

    def status(self, clip: str) -> str:
        x = self.matches[clip]
        if set(x.episodes) & self.tuned:
            return "seen"
        return "unseen" if x.episodes or (self.covered and x.n_grams >= MIN_NGRAMS) else "unknown"

    def ids(self, status: str) -> set[str]:
        return {cid for cid in self.matches if self.status(cid) == status}

    def summary(self) -> dict:
        m = self.matches.values()
        sources = Counter(x.source for x in m if x.episodes)
        seen_from = Counter(e for x in m for e in x.episodes if e in self.tuned)
        return {"method": METHOD, "threshold": MATCH_THRESHOLD, "n_clips": len(self.matches),
                "n_matched": sum(bool(x.episodes) for x in m), "n_unmatched": sum(not x.episodes for x in m),
                "n_ambiguous": sum(len(x.episodes) > 1 for x in m), "matched_by": dict(sources),
                "n_too_short": sum(not x.episodes and x.n_grams < MIN_NGRAMS for x in m),
                **{f"n_{s}": len(self.ids(s)) for s in ("seen", "unseen", "unknown")},
                "unmatched_are": "unseen (every tuned episode's transcript was searched)" if self.covered else
                "unknown (not every tuned episode's transcript was searched)",
                "n_episodes_tuned": len(self.tuned), "episodes_seen": dict(sorted(seen_from.items())),
                "clips": {cid: {"status": self.status(cid), "episodes": x.episodes, "part": x.part, "score": x.score,
                                "source": x.source if x.episodes else None} for cid, x in sorted(self.matches.items())}}


def split_by_episode(clips: dict[str, list[str]], tuned: set[str], transcripts: dict[str, list[str]] | None = None,
                     table: dict[str, str] | None = None, table_source: str = "episode table",
                     threshold: float = MATCH_THRESHOLD) -> EpisodeSplit:
    """Friends clips (id -> sentences) -> seen / unseen / unknown given the ``tuned`` episodes (``seen_episodes``).

    A clip in ``table`` takes its episode from there; the others are matched in ``transcripts`` (``match_clips``).
    Neither given: a DataError (nothing to place clips with).
    """
    if transcripts is None and table is None:
        raise DataError("no Friends transcripts and no downstream.episode_table: the episode of a MUStARD clip cannot "
                        "be found; give the Algonauts root (data.root) or a clip_id<TAB>episode table")
    table = table or {}
    matches = {cid: Match(cid, [table[cid]], None, 1.0, 0, table_source) for cid in clips if cid in table}
    rest = {cid: s for cid, s in clips.items() if cid not in table}
    if transcripts:
        matches.update(match_clips(rest, transcripts, threshold))
    matches.update({cid: Match(cid, n_grams=len(clip_grams(s))) for cid, s in rest.items() if cid not in matches})
    return EpisodeSplit(matches, {episode_of(run) or run for run in transcripts or {}}, set(tuned))
