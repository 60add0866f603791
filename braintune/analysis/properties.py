"""Words of a transcript in, one linguistic-property label per word out (Oota et al. 2023, analysis_methods.md §1.4).

Two sources. (a) A label file: the paper's ``balanced_21styear_probing_labels.csv`` (one row per
word index; columns ``sen_len``, ``tree_depth``, ``top_const``, ``tense``, ``subjnum``, ``objnum``;
the index column may be unnamed, as pandas writes it) or any word-index → label CSV/TSV.
(b) Labels computed offline: sentence and word length from the text; POS, dependency depth,
tense and subject/object number from spaCy ``Doc`` objects. Tree depth and top constituents need
a constituency parse, which spaCy does not give: they come from a label file only.

Sentence-level labels are copied to every word of the sentence; numeric labels become classes
with `balanced_bins` (rule in its docstring).
"""
from __future__ import annotations

import csv
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PAPER_PROPERTIES = ("sen_len", "tree_depth", "top_const", "tense", "subjnum", "objnum")
CONSTITUENCY_PROPERTIES = ("tree_depth", "top_const")
MISSING = ("", "nan", "na", "n/a", "none", "null")
_PUNCT = string.punctuation + "“”‘’«»—–…"


def read_label_table(path, words: Sequence[str], columns: Sequence[str] | None = None,
                     index_column: str | None = None, word_column: str = "word") -> dict[str, np.ndarray]:
    """Read per-word labels from a CSV/TSV with one row per word index, aligned to ``words``.

    The index column is ``index_column`` when given, else an unnamed first column (pandas'
    ``to_csv`` layout of the paper's file), else the file order. Index values must be distinct
    integers covering ``base .. base + len(words) - 1`` with ``base`` 0 or 1. When the table has
    a ``word_column``, its words must match ``words`` (case and edge punctuation ignored).

    Parameters
    ----------
    path : str or Path
        ``.tsv``/``.tab`` is tab-separated, ``.csv`` comma-separated, anything else sniffed.
    words : sequence of str, length n_words
    columns : sequence of str, optional
        Label columns to return (default: every column but the index and word columns).

    Returns
    -------
    labels : dict column -> array of shape (n_words,), int / float when every value parses.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    order = _index_of(path, header, rows, index_column, len(words))
    rows, lines = [rows[i] for i in order], order + 2  # file line of each word's row
    skip = {index_column or header[0], word_column} if index_column or _unnamed(header[0]) else {word_column}
    wanted = list(columns) if columns is not None else [c for c in header if c not in skip]
    missing = [c for c in wanted if c not in header]
    if missing:
        hint = (" tree_depth and top_const need a constituency parse; compute them and add them to "
                "the file." if set(missing) & set(CONSTITUENCY_PROPERTIES) else "")
        raise ValueError(f"{path}: missing label column(s) {missing}; the file has {header}.{hint}")
    if word_column in header:
        _check_words(path, [r[header.index(word_column)] for r in rows], words)
    return {c: _parse_column(path, c, [r[header.index(c)] for r in rows], lines) for c in wanted}


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist; pass the probing-label CSV/TSV.")
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    delim = "\t" if suffix in (".tsv", ".tab") else "," if suffix == ".csv" else _sniff(text)
    table = [r for r in csv.reader(text.splitlines(), delimiter=delim) if r]
    if len(table) < 2:
        raise ValueError(f"{path}: needs a header row and at least one label row, found {len(table)} rows.")
    header = [h.strip() for h in table[0]]
    for line, r in enumerate(table[1:], start=2):
        if len(r) != len(header):
            raise ValueError(f"{path}, line {line}: {len(r)} fields but the header has {len(header)} "
                             f"({header}); fix the row or the delimiter.")
    return header, table[1:]


def _sniff(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text.splitlines()[0] if text else ",", ",\t;").delimiter
    except csv.Error:
        return ","


def _unnamed(name: str) -> bool:
    return name == "" or name.startswith("Unnamed")


def _index_of(path: Path, header, rows, index_column, n_words: int) -> np.ndarray:
    """Row order that puts word index base, base+1, … first to last."""
    if len(rows) != n_words:
        raise ValueError(f"{path}: {len(rows)} label rows but the word list has {n_words} words; the "
                         f"file needs one row per transcript word, in the same word order.")
    if index_column is None and not _unnamed(header[0]):
        return np.arange(n_words)
    if index_column is not None and index_column not in header:
        raise ValueError(f"{path}: index column {index_column!r} not found; the file has {header}.")
    col = header.index(index_column) if index_column is not None else 0
    try:
        idx = np.array([int(r[col]) for r in rows])
    except ValueError:
        bad = next(k for k, r in enumerate(rows) if not r[col].strip().lstrip("-").isdigit())
        raise ValueError(f"{path}, line {bad + 2}: word index {rows[bad][col]!r} in column "
                         f"{header[col]!r} is not an integer.") from None
    base = idx.min()
    expected = np.arange(base, base + n_words)
    if base not in (0, 1) or not np.array_equal(np.sort(idx), expected):
        gaps = np.setdiff1d(expected, idx)[:5].tolist()
        raise ValueError(f"{path}: word indices in column {header[col]!r} must be distinct and run "
                         f"{0}..{n_words - 1} (or 1..{n_words}); missing {gaps}, smallest {base}.")
    return np.argsort(idx, kind="stable")


def _clean(word: str) -> str:
    return word.strip().strip(_PUNCT).lower()


def _check_words(path: Path, file_words: list[str], words: Sequence[str]) -> None:
    for k, (a, b) in enumerate(zip(file_words, words)):
        if _clean(a) != _clean(b):
            raise ValueError(f"{path}: word {k} is {a!r} in the file but {b!r} in the transcript; the "
                             f"labels belong to another word list or are shifted.")


def _parse_column(path: Path, name: str, values: list[str], lines: np.ndarray) -> np.ndarray:
    for k, v in enumerate(values):
        if v.strip().lower() in MISSING:
            raise ValueError(f"{path}, line {lines[k]}: column {name!r} has no label for word {k} "
                             f"({v!r}); every word needs a label (copy sentence-level labels to each "
                             f"word).")
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values])
        except ValueError:
            continue
    return np.array([v.strip() for v in values])


def load_spacy(model: str = "en_core_web_sm"):
    """Load an installed spaCy pipeline, or fail saying how to install it."""
    import spacy
    try:
        return spacy.load(model)
    except OSError as err:
        raise RuntimeError(f"spaCy pipeline {model!r} is not installed; install it with "
                           f"`python -m spacy download {model}` (or pass a loaded nlp / Doc objects "
                           f"to transcript_labels / doc_labels).") from err


def sentence_ids(words: Sequence[str]) -> np.ndarray:
    """Sentence number of each word; a sentence ends at a word ending in ``.``, ``?`` or ``!``.

    Closing quotes and brackets after the mark are ignored (``end."`` ends a sentence).
    Returns an int array of shape (n_words,).
    """
    ends = [w.rstrip("\"')]”’").endswith((".", "?", "!")) for w in words]
    return np.concatenate([[0], np.cumsum(ends[:-1])]).astype(int) if len(words) else np.zeros(0, int)


def surface_labels(words: Sequence[str], sentences: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Sentence length (words in the sentence, copied to each word) and word length (characters).

    Word length counts characters once edge punctuation is stripped. ``sentences`` defaults to
    `sentence_ids`. Returns ``{"sentence", "sen_len", "word_len"}``, each of shape (n_words,).
    """
    sent = sentence_ids(words) if sentences is None else np.asarray(sentences)
    if len(sent) != len(words):
        raise ValueError(f"surface_labels: {len(sent)} sentence ids for {len(words)} words.")
    _, inverse, counts = np.unique(sent, return_inverse=True, return_counts=True)
    return {"sentence": sent, "sen_len": counts[inverse],
            "word_len": np.array([len(w.strip().strip(_PUNCT)) for w in words])}


def _token_depth(tok) -> int:
    depth = 0
    while tok.head.i != tok.i:
        tok, depth = tok.head, depth + 1
        if depth > len(tok.doc):
            raise ValueError(f"dependency heads of {tok.doc.text[:60]!r} form a cycle.")
    return depth


def _tense(root) -> str:
    """Main-clause tense (SentEval's Tense): of the finite verb among the root and its
    auxiliaries ("has eaten" -> Pres), else of any of them with a Tense, else from the fine tag."""
    verbs = [c for c in root.children if c.dep_ in ("aux", "auxpass")] + [root]
    finite = [t for t in verbs if "Fin" in t.morph.get("VerbForm") and t.morph.get("Tense")]
    tensed = finite or [t for t in verbs if t.morph.get("Tense")]
    if tensed:
        return tensed[0].morph.get("Tense")[0]
    tags = [{"VBD": "Past", "VBZ": "Pres", "VBP": "Pres"}.get(t.tag_) for t in verbs]
    return next((t for t in tags if t), "none")


def _number(root, deps: tuple[str, ...]) -> str:
    """Grammatical number of the root's first dependent with one of ``deps``."""
    for c in root.children:
        if c.dep_ in deps:
            if c.morph.get("Number"):
                return c.morph.get("Number")[0]
            return {"NNS": "Plur", "NNPS": "Plur", "NN": "Sing", "NNP": "Sing"}.get(c.tag_, "none")
    return "none"


def doc_labels(docs) -> dict[str, np.ndarray]:
    """Per-token labels from parsed spaCy ``Doc`` objects (tagger + dependency parse needed).

    Returns arrays of shape (n_tokens over all docs,): ``pos`` (coarse UPOS), ``dep_depth``
    (arcs from the token to its sentence root, root = 0), and sentence-level labels copied to
    every token: ``dep_tree_depth`` (largest ``dep_depth`` in the sentence), ``tense`` (Past /
    Pres / none, main clause), ``subjnum`` and ``objnum`` (Sing / Plur / none, the root's
    nsubj(pass) and dobj/obj), plus ``sentence``, ``sen_len`` and ``word_len``.
    """
    docs = [docs] if hasattr(docs, "sents") else list(docs)
    out = {k: [] for k in ("pos", "dep_depth", "dep_tree_depth", "tense", "subjnum", "objnum", "sentence")}
    words, n_sent = [], 0
    for doc in docs:
        if not doc.has_annotation("DEP"):
            raise ValueError(f"doc_labels: Doc {doc.text[:40]!r} has no dependency parse; run a "
                             f"pipeline with a parser (load_spacy()) first.")
        for sent in doc.sents:
            depths = [_token_depth(t) for t in sent]
            sent_labels = (max(depths), _tense(sent.root), _number(sent.root, ("nsubj", "nsubjpass")),
                           _number(sent.root, ("dobj", "obj")), n_sent)
            for tok, depth in zip(sent, depths):
                out["pos"].append(tok.pos_)
                out["dep_depth"].append(depth)
                for key, value in zip(("dep_tree_depth", "tense", "subjnum", "objnum", "sentence"), sent_labels):
                    out[key].append(value)
                words.append(tok.text)
            n_sent += 1
    labels = {k: np.array(v) for k, v in out.items()}
    surface = surface_labels(words, labels["sentence"])
    return labels | {"sen_len": surface["sen_len"], "word_len": surface["word_len"]}


def transcript_labels(words: Sequence[str], nlp) -> dict[str, np.ndarray]:
    """`doc_labels` of a transcript, one row per transcript word (no re-tokenisation).

    The Doc is built from the words themselves (edge punctuation stripped) with sentence starts
    from `sentence_ids`, then run through ``nlp``, so token k is word k.
    """
    from spacy.tokens import Doc
    sent = sentence_ids(words)
    clean = [w.strip().strip(_PUNCT) or w.strip() or "_" for w in words]
    starts = [True] + [bool(a != b) for a, b in zip(sent[1:], sent[:-1])]
    doc = nlp(Doc(nlp.vocab, words=clean, sent_starts=starts))
    labels = doc_labels(doc)
    return labels | surface_labels(words, sent)


def balanced_bins(values, n_bins: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Numeric per-word values into ``n_bins`` classes of as equal size as ties allow.

    Rule: sort the distinct values; cut k (k = 1..n_bins-1) falls after the distinct value whose
    cumulative word count is nearest to k·n/n_bins. Equal values always share a class, so the
    class of a sentence-level label is the same for every word of the sentence.

    Returns
    -------
    classes : int array of shape (n_words,), 0 .. n_bins-1 in increasing value
    upper : array of shape (n_bins,), the largest value of each class
    """
    values = np.asarray(values, dtype=float)
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) < n_bins:
        raise ValueError(f"balanced_bins: {len(uniq)} distinct values cannot fill {n_bins} classes; "
                         f"lower n_bins or treat the property as categorical.")
    cum = np.cumsum(counts)
    cuts = sorted({int(np.abs(cum[:-1] - k * len(values) / n_bins).argmin()) for k in range(1, n_bins)})
    if len(cuts) < n_bins - 1:
        raise ValueError(f"balanced_bins: ties leave only {len(cuts) + 1} classes for {n_bins} bins; "
                         f"lower n_bins.")
    upper = np.append(uniq[cuts], uniq[-1])
    return np.searchsorted(upper, values, side="left"), upper


def to_classes(values, n_bins: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per-word labels to integer classes: numbers with more than ``n_bins`` distinct values are
    `balanced_bins`; anything else (strings, few values) is one class per distinct value.

    Returns (classes int array (n_words,), names (n_classes,): the value or the bin's upper value).
    """
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.number) and len(np.unique(values)) > n_bins:
        return balanced_bins(values, n_bins)
    names, classes = np.unique(values, return_inverse=True)
    return classes, names


def sentence_to_words(sentence_values, sentences) -> np.ndarray:
    """Copy one value per sentence to each of its words: ``sentence_values[sentences]``."""
    sentence_values, sentences = np.asarray(sentence_values), np.asarray(sentences, dtype=int)
    if sentences.size and (sentences.min() < 0 or sentences.max() >= len(sentence_values)):
        raise ValueError(f"sentence_to_words: sentence ids span {sentences.min()}..{sentences.max()} "
                         f"but {len(sentence_values)} sentence values were given.")
    return sentence_values[sentences]


SURFACE_PROPERTIES = ("sen_len", "word_len")  # from the text alone
SPACY_PROPERTIES = ("pos", "dep_depth", "dep_tree_depth", "tense", "subjnum", "objnum")  # from a spaCy parse


def pause_sentence_ids(starts, ends, pause_s: float) -> np.ndarray:
    """Sentence number of each word of an unpunctuated transcript: a silence of at least ``pause_s`` seconds
    between a word's end and the next word's start ends a sentence. Returns an int array of shape (n_words,)."""
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if len(starts) == 0:
        return np.zeros(0, int)
    return np.concatenate([[0], np.cumsum(starts[1:] - ends[:-1] >= pause_s)]).astype(int)


def word_properties(names: Sequence[str], words: Sequence[str], table: dict[str, np.ndarray] | None = None,
                    sentences: np.ndarray | None = None, nlp=None) -> dict[str, np.ndarray]:
    """One value per word for each property in ``names``, from ``table`` (a label file's columns) when it has the
    property, else computed: ``sen_len`` / ``word_len`` from the text (sentences: ``sentences`` ids, default
    `sentence_ids`), the `SPACY_PROPERTIES` from ``nlp`` (a spaCy pipeline, or a callable that loads one).
    Constituency properties (``tree_depth``, ``top_const``) come from a label file only.
    """
    table, out, parsed = table or {}, {}, None
    for name in names:
        if name in table:
            out[name] = np.asarray(table[name])
        elif name in SURFACE_PROPERTIES:
            out[name] = surface_labels(words, sentences)[name]
        elif name in SPACY_PROPERTIES:
            if nlp is None:
                raise ValueError(f"property {name!r} needs a spaCy pipeline (none given) or a label file column")
            if parsed is None:
                parsed = transcript_labels(words, nlp() if callable(nlp) and not hasattr(nlp, "vocab") else nlp)
            out[name] = parsed[name]
        elif name in CONSTITUENCY_PROPERTIES:
            raise ValueError(f"property {name!r} needs a constituency parse, which braintune does not compute: give a "
                             f"label file with a {name!r} column (e.g. the paper's balanced_21styear_probing_labels.csv)")
        else:
            raise ValueError(f"property {name!r} is neither a label file column ({sorted(table) or 'no label file'}) nor "
                             f"computed by braintune ({list(SURFACE_PROPERTIES + SPACY_PROPERTIES)})")
    return out
