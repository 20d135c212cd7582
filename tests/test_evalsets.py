"""Eval sets: loaded through `datasets`, with ids that survive reordering."""

import json

import pandas as pd
import pytest

from workbench.errors import EvalSetError
from workbench.evaluation.evalsets import EvalSet

ROWS = [{"id": "a", "q": "one", "label": "x"}, {"id": "b", "q": "two", "label": "y"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_files_load_with_their_id_column(tmp_path, suffix):
    path = tmp_path / f"set{suffix}"
    frame = pd.DataFrame(ROWS)
    if suffix == ".jsonl":
        write_jsonl(path, ROWS)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    evalset = EvalSet.from_file(path)
    assert [e.id for e in evalset.examples] == ["a", "b"]
    assert evalset.examples[1].inputs["q"] == "two"
    assert evalset.columns == ["id", "q", "label"]


def test_without_an_id_column_ids_come_from_content_and_survive_reordering():
    forward = EvalSet.from_records([{"q": "one"}, {"q": "two"}])
    backward = EvalSet.from_records([{"q": "two"}, {"q": "one"}])
    assert {e.id: e.inputs["q"] for e in forward.examples} == {
        e.id: e.inputs["q"] for e in backward.examples}


def test_the_digest_changes_when_a_row_changes():
    a = EvalSet.from_records(ROWS)
    b = EvalSet.from_records([ROWS[0], {**ROWS[1], "label": "z"}])
    assert a.digest == EvalSet.from_pandas(pd.DataFrame(ROWS)).digest
    assert a.digest != b.digest


def test_duplicate_ids_are_an_error_that_names_them():
    with pytest.raises(EvalSetError, match=r"duplicate example ids \['a'\]"):
        EvalSet.from_records([ROWS[0], ROWS[0]])


def test_unknown_id_field_names_the_columns():
    with pytest.raises(EvalSetError, match="columns are"):
        EvalSet.from_records(ROWS, id_field="key")


def test_a_broken_file_says_which_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"q": "one"}\nnot json\n')
    with pytest.raises(EvalSetError, match="bad.jsonl"):
        EvalSet.from_file(path)


def test_a_hub_name_offline_fails_at_once_with_the_way_out():
    with pytest.raises(EvalSetError, match="download the data to a local"):
        EvalSet.from_hub("some-org/some-dataset")


def test_head_keeps_ids(tmp_path):
    evalset = EvalSet.from_file(write_jsonl(tmp_path / "s.jsonl", ROWS))
    assert [e.id for e in evalset.head(1).examples] == ["a"]
    assert evalset.head(1).digest != evalset.digest


def test_compressed_tsv_and_bom_files_load(tmp_path):
    import gzip

    with gzip.open(tmp_path / "set.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "set.tsv").write_text("id\tq\tlabel\na\tone, two\tx\n")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS[0]).encode() + b"\n")
    assert [e.id for e in EvalSet.from_file(tmp_path / "set.jsonl.gz").examples] == ["a", "b"]
    assert EvalSet.from_file(tmp_path / "set.tsv").examples[0].inputs["q"] == "one, two"
    assert EvalSet.from_file(tmp_path / "bom.jsonl").columns == ["id", "q", "label"]


def test_a_file_that_is_not_what_its_suffix_says_is_an_eval_set_error(tmp_path):
    (tmp_path / "set.jsonl.gz").write_text('{"id": "a"}\n')
    with pytest.raises(EvalSetError, match="cannot be decompressed as gzip"):
        EvalSet.from_file(tmp_path / "set.jsonl.gz")
