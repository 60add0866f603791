"""Word timings: Praat TextGrid (long format) and Algonauts per-TR transcripts -> Word lists."""
import pytest

from braintune.data.study import DataError
from braintune.data.words import Word, read_textgrid, read_transcript_tsv

TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 3.0
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "phone"
        xmin = 0
        xmax = 3.0
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 3.0
            text = "AH"
    item [2]:
        class = "IntervalTier"
        name = "word"
        xmin = 0
        xmax = 3.0
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = ""
        intervals [2]:
            xmin = 0.5
            xmax = 1.25
            text = "hello"
        intervals [3]:
            xmin = 1.25
            xmax = 1.5
            text = "sp"
        intervals [4]:
            xmin = 1.5
            xmax = 3.0
            text = "world"
'''


def test_textgrid_word_tier_skips_silence(tmp_path):
    p = tmp_path / "story.TextGrid"
    p.write_text(TEXTGRID)
    assert read_textgrid(p) == [Word(0.5, 1.25, "hello"), Word(1.5, 3.0, "world")]


def test_textgrid_without_word_tier_names_file(tmp_path):
    p = tmp_path / "bad.TextGrid"
    p.write_text(TEXTGRID.replace('name = "word"', 'name = "other"'))
    with pytest.raises(DataError, match="bad.TextGrid"):
        read_textgrid(p)


def test_transcript_tsv_parses_literal_lists(tmp_path):
    p = tmp_path / "friends_s01e01a.tsv"
    p.write_text("text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr\n"
                 "\t[]\t[]\t[]\n"
                 "so you\t['so', 'you']\t[1.6, 2.0]\t[0.3, 0.4]\n"
                 "hi\t['hi']\t[]\t[]\n")
    words = read_transcript_tsv(p, tr=1.49)
    assert [w.text for w in words] == ["so", "you", "hi"]
    assert words[1].start_s == pytest.approx(2.0) and words[1].end_s == pytest.approx(2.4)
    assert words[2].start_s == pytest.approx(2 * 1.49) and words[2].end_s == pytest.approx(3 * 1.49)


def test_transcript_missing_columns_names_file(tmp_path):
    p = tmp_path / "broken.tsv"
    p.write_text("text_per_tr\twords_per_tr\nhi\t['hi']\n")
    with pytest.raises(DataError, match="broken.tsv.*onsets_per_tr"):
        read_transcript_tsv(p, tr=1.49)


def test_textgrid_of_the_synthetic_writer_reads_back_its_words(tmp_path):
    from braintune.data.formats.synthetic import _write_textgrid

    planted = [(0.5, 0.9, "low"), (0.9, 1.3, "deep"), (2.0, 2.25, "sp"), (3.1, 3.6, "bright")]  # back to back, a gap
    _write_textgrid(tmp_path / "story.TextGrid", planted, 5.0)
    assert read_textgrid(tmp_path / "story.TextGrid") == [Word(a, b, t) for a, b, t in planted if t != "sp"]


def test_textgrid_short_format_and_utf16(tmp_path):
    short = 'File type = "ooTextFile short"\n"TextGrid"\n\n0\n2\n<exists>\n1\n"IntervalTier"\n"words"\n0\n2\n2\n0\n1\n"café"\n1\n2\n""\n'
    (tmp_path / "short.TextGrid").write_bytes(short.encode("utf-16"))  # Praat writes UTF-16 for non-ASCII labels
    assert read_textgrid(tmp_path / "short.TextGrid") == [Word(0.0, 1.0, "café")]


def test_truncated_textgrid_names_file(tmp_path):
    p = tmp_path / "cut.TextGrid"
    p.write_text(TEXTGRID[: TEXTGRID.index("intervals [3]") + 30])  # cut inside the word tier
    with pytest.raises(DataError, match="cut.TextGrid.*cannot be parsed"):
        read_textgrid(p)
