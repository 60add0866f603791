"""Property labels: label files in the paper's layout, spaCy Docs built by hand, balanced classes."""
import numpy as np
import pytest
import spacy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from braintune.analysis import properties as props

WORDS = ["The", "cats", "sat", "on", "the", "mat.", "She", "has", "eaten", "the", "big", "apples.",
         "Dogs", "bark!"]


def _docs():
    """Three parsed sentences, heads/deps/pos/tags/morphs written by hand (no model)."""
    vocab = Vocab()
    s1 = Doc(vocab, words=["The", "cats", "sat", "on", "the", "mat", "."],
             heads=[1, 2, 2, 2, 5, 3, 2],
             deps=["det", "nsubj", "ROOT", "prep", "det", "pobj", "punct"],
             pos=["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"],
             tags=["DT", "NNS", "VBD", "IN", "DT", "NN", "."],
             morphs=["", "Number=Plur", "Tense=Past|VerbForm=Fin", "", "", "Number=Sing", ""])
    # "has eaten": the finite auxiliary is present tense, the participle is Tense=Past.
    s2 = Doc(vocab, words=["She", "has", "eaten", "the", "big", "apples", "."],
             heads=[2, 2, 2, 5, 5, 2, 2],
             deps=["nsubj", "aux", "ROOT", "det", "amod", "dobj", "punct"],
             pos=["PRON", "AUX", "VERB", "DET", "ADJ", "NOUN", "PUNCT"],
             tags=["PRP", "VBZ", "VBN", "DT", "JJ", "NNS", "."],
             morphs=["Number=Sing|Person=3", "Tense=Pres|VerbForm=Fin", "Aspect=Perf|Tense=Past|VerbForm=Part",
                     "", "Degree=Pos", "", ""])
    # No morphology at all: tense and number come from the fine tags.
    s3 = Doc(vocab, words=["Dogs", "bark", "!"], heads=[1, 1, 1], deps=["nsubj", "ROOT", "punct"],
             pos=["NOUN", "VERB", "PUNCT"], tags=["NNS", "VBP", "."])
    return [s1, s2, s3]


def test_doc_labels_pos_depth_tense_number():
    lab = props.doc_labels(_docs())
    assert lab["pos"].tolist() == ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT",
                                   "PRON", "AUX", "VERB", "DET", "ADJ", "NOUN", "PUNCT",
                                   "NOUN", "VERB", "PUNCT"]
    # Hops to the root, counted by hand: The->cats->sat = 2, the->mat->on->sat = 3, ...
    assert lab["dep_depth"].tolist() == [2, 1, 0, 1, 3, 2, 1, 1, 1, 0, 2, 2, 1, 1, 1, 0, 1]
    assert lab["dep_tree_depth"].tolist() == [3] * 7 + [2] * 7 + [1] * 3
    assert lab["tense"].tolist() == ["Past"] * 7 + ["Pres"] * 7 + ["Pres"] * 3
    assert lab["subjnum"].tolist() == ["Plur"] * 7 + ["Sing"] * 7 + ["Plur"] * 3
    assert lab["objnum"].tolist() == ["none"] * 7 + ["Plur"] * 7 + ["none"] * 3
    assert lab["sen_len"].tolist() == [7] * 7 + [7] * 7 + [3] * 3
    assert lab["sentence"].tolist() == [0] * 7 + [1] * 7 + [2] * 3


def test_doc_without_parse_is_refused():
    doc = Doc(Vocab(), words=["no", "parse"])
    with pytest.raises(ValueError, match="no dependency parse"):
        props.doc_labels([doc])


def test_surface_labels_and_transcript_alignment():
    sent = props.sentence_ids(WORDS)
    assert sent.tolist() == [0] * 6 + [1] * 6 + [2] * 2
    surf = props.surface_labels(WORDS)
    assert surf["sen_len"].tolist() == [6] * 6 + [6] * 6 + [2] * 2
    assert surf["word_len"].tolist() == [3, 4, 3, 2, 3, 3, 3, 3, 5, 3, 3, 6, 4, 4]
    # A blank pipeline parses nothing: the transcript path then refuses, naming the parser.
    with pytest.raises(ValueError, match="no dependency parse"):
        props.transcript_labels(WORDS, spacy.blank("en"))


def test_load_spacy_missing_model_says_how_to_install():
    if spacy.util.is_package("en_core_web_sm"):
        pytest.skip("en_core_web_sm is installed here")
    with pytest.raises(RuntimeError, match="python -m spacy download en_core_web_sm"):
        props.load_spacy("en_core_web_sm")


def _paper_csv(path, n, sep=",", index_header=""):
    """The paper's layout: an index column (unnamed, as pandas writes it) + the six properties."""
    rng = np.random.default_rng(0)
    rows = [sep.join([index_header, *props.PAPER_PROPERTIES])]
    for i in rng.permutation(n):  # rows out of order: the index, not the file order, decides
        rows.append(sep.join(map(str, [i, i % 3, 5 + i % 3, i % 2, "PAST" if i % 2 else "PRES",
                                       "NN", "NNS"])))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_label_file_in_paper_layout_loads(tmp_path):
    words = [f"w{i}" for i in range(10)]
    lab = props.read_label_table(_paper_csv(tmp_path / "balanced_probing_labels.csv", 10), words)
    assert list(lab) == list(props.PAPER_PROPERTIES)
    assert lab["sen_len"].tolist() == [i % 3 for i in range(10)]
    assert lab["tree_depth"].dtype.kind == "i" and lab["tree_depth"].tolist() == [5 + i % 3 for i in range(10)]
    assert lab["tense"].tolist() == ["PAST" if i % 2 else "PRES" for i in range(10)]
    tsv = props.read_label_table(_paper_csv(tmp_path / "labels.tsv", 10, "\t", "word_index"), words,
                                 columns=["tense"], index_column="word_index")
    assert tsv["tense"].tolist() == lab["tense"].tolist()


def test_label_file_errors_name_file_column_row(tmp_path):
    path = _paper_csv(tmp_path / "short.csv", 8)
    with pytest.raises(ValueError, match=r"short\.csv: 8 label rows but the word list has 10"):
        props.read_label_table(path, [f"w{i}" for i in range(10)])
    with pytest.raises(ValueError, match=r"short\.csv: missing label column\(s\) \['voice'\].*"):
        props.read_label_table(path, [f"w{i}" for i in range(8)], columns=["voice"])
    computed = tmp_path / "computed.csv"
    computed.write_text("word,sen_len\na,1\n")
    with pytest.raises(ValueError, match="tree_depth and top_const need a constituency parse"):
        props.read_label_table(computed, ["a"], columns=["tree_depth"])
    gap = tmp_path / "gap.csv"
    gap.write_text("idx,tense\n0,PAST\n1,\n2,PRES\n")
    with pytest.raises(ValueError, match=r"gap\.csv, line 3: column 'tense' has no label for word 1"):
        props.read_label_table(gap, ["a", "b", "c"], index_column="idx")
    words = tmp_path / "words.csv"
    words.write_text("word,tense\nthe,PAST\ncat,PAST\n")
    with pytest.raises(ValueError, match=r"words\.csv: word 1 is 'cat' in the file but 'dog'"):
        props.read_label_table(words, ["The", "dog"])


def test_balanced_bins_rule():
    # Sentence lengths copied to words: 10 words each of lengths 5, 8, 12 -> three classes of 10.
    values = np.repeat([5, 8, 12, 5], [4, 10, 10, 6])
    classes, upper = props.balanced_bins(values, 3)
    assert np.bincount(classes).tolist() == [10, 10, 10] and upper.tolist() == [5, 8, 12]
    assert classes[:4].tolist() == [0] * 4  # equal values share a class, wherever they are
    cont = np.random.default_rng(1).normal(size=301)
    counts = np.bincount(props.balanced_bins(cont, 3)[0])
    assert counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="2 distinct values"):
        props.balanced_bins([1, 1, 2], 3)


def test_to_classes_and_sentence_copy():
    classes, names = props.to_classes(np.array(["Pres", "Past", "Pres"]))
    assert classes.tolist() == [1, 0, 1] and names.tolist() == ["Past", "Pres"]
    per_word = props.sentence_to_words(np.array([7, 7, 3]), props.sentence_ids(WORDS))
    assert per_word.tolist() == [7] * 12 + [3] * 2
    assert props.to_classes(np.arange(9), 3)[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


class _HandParser:
    """Stands in for a loaded pipeline: writes hand-made annotations onto the Doc it is given."""

    def __init__(self):
        self.vocab = Vocab()
        self.heads = [1, 2, 2, 2, 5, 3, 7, 7]
        self.deps = ["det", "nsubj", "ROOT", "prep", "det", "pobj", "nsubj", "ROOT"]
        self.pos = ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "NOUN", "VERB"]
        self.tags = ["DT", "NNS", "VBD", "IN", "DT", "NN", "NNS", "VBP"]
        self.seen = None

    def __call__(self, doc):
        self.seen = ([t.text for t in doc], [bool(t.is_sent_start) for t in doc])
        return Doc(self.vocab, words=self.seen[0], heads=self.heads, deps=self.deps, pos=self.pos,
                   tags=self.tags)


def test_transcript_labels_one_row_per_word():
    words = ["The", "cats", "sat", "on", "the", "mat.", "Dogs", "bark!"]
    nlp = _HandParser()
    lab = props.transcript_labels(words, nlp)
    assert nlp.seen == (["The", "cats", "sat", "on", "the", "mat", "Dogs", "bark"],
                        [True] + [False] * 5 + [True, False])
    assert lab["dep_depth"].tolist() == [2, 1, 0, 1, 3, 2, 1, 0]
    assert lab["tense"].tolist() == ["Past"] * 6 + ["Pres"] * 2
    assert lab["sen_len"].tolist() == [6] * 6 + [2] * 2 and lab["word_len"][5] == 3
