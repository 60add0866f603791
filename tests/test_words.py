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
