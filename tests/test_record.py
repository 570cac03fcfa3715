"""The course's record: reading values by path from results files, entries, claims, differences."""

from __future__ import annotations

import json
import math

import pytest

from vgcourse.metrics.protocol import format_rows
from vgcourse.record import Claim, Entry, combined, difference, lookup, read_claim, read_entry


def write(directory, chapter: str, metrics: dict, profile: str = "gpu", **extra) -> None:
    payload = {"chapter": chapter, "metrics": metrics, "profile": profile, "device": "a GPU"} | extra
    (directory / f"{chapter}.json").write_text(json.dumps(payload))


@pytest.fixture
def record(tmp_path):
    write(tmp_path, "20_model", {
        "headline": {"fd": 12.0, "fd_se": 0.5, "frame_quality": 0.7, "identity_consistency": 0.6, "diversity": 0.8,
                     "motion_consistency": 0.9, "n_gen": 384, "minutes": 4.0, "claim": "not resolved (a model above "
                     "the floor)"},
        "scores": {"second model": {"fd": 30.0, "fd_se": 1.0, "n_gen": 384}},
        "flops": {"first_stage": 1e14, "prior": 2e15, "broken": "n/a"},
        "bars": {"a bar": {"outcome": "not met", "value": 0.3}, "b bar": {"outcome": "met"}},
        "gap": 0.4, "gap_se": 0.1, "word": "maybe",
    }, train={"train_flops": 3e15})
    return tmp_path


def test_lookup_walks_keys_with_dots_and_spaces(record):
    payload = json.loads((record / "20_model.json").read_text())
    assert lookup(payload, "metrics/scores/second model/fd") == 30.0
    assert lookup(payload, "metrics/bars/a bar/outcome") == "not met"


def test_lookup_names_the_chapter_and_the_missing_key(record):
    payload = json.loads((record / "20_model.json").read_text())
    with pytest.raises(KeyError, match=r"20_model: no 'fdx' under metrics/headline \(there: \['claim', 'diversity'"):
        lookup(payload, "metrics/headline/fdx")
    with pytest.raises(KeyError, match="no 'deeper' under metrics/gap"):
        lookup(payload, "metrics/gap/deeper")


def test_read_entry_reads_scores_costs_and_provenance(record):
    row = read_entry(Entry("diffusion", "diffusion", "model", "20_model", flops="train/train_flops",
                           minutes="metrics/headline/minutes"), record)
    assert (row["fd"], row["fd_se"], row["identity_consistency"], row["n_gen"]) == (12.0, 0.5, 0.6, 384)
    assert (row["train_flops"], row["minutes"], row["sampling_ms"]) == (3e15, 4.0, None)
    assert (row["device"], row["profile"], row["chapter"]) == ("a GPU", "gpu", "20_model")


def test_read_entry_sums_a_pipelines_parts_and_reads_a_named_model(record):
    row = read_entry(Entry("diffusion", "diffusion", "second", "20_model", scores="metrics/scores/second model",
                           flops=("metrics/flops/first_stage", "metrics/flops/prior")), record)
    assert row["fd"] == 30.0 and row["frame_quality"] is None
    assert row["train_flops"] == pytest.approx(2.1e15)


def test_read_entry_refuses_what_is_not_a_number_or_not_there(record):
    with pytest.raises(ValueError, match="metrics/flops/broken holds 'n/a'"):
        read_entry(Entry("x", "y", "z", "20_model", flops="metrics/flops/broken"), record)
    with pytest.raises(FileNotFoundError, match="no results for '21_missing'"):
        read_entry(Entry("x", "y", "z", "21_missing"), record)
    with pytest.raises(KeyError, match="no 'fd' under metrics/scores"):
        read_entry(Entry("x", "y", "z", "20_model", scores="metrics/scores"), record)


def test_read_claim_maps_bar_words_and_keeps_a_reason(record):
    bar = read_claim(Claim("e", "a bar holds", "20_model", "metrics/bars/a bar/outcome",
                           {"value": "metrics/bars/a bar/value"}), record)
    assert (bar["outcome"], bar["reason"], bar["evidence"]) == ("not supported", None, {"value": 0.3})
    reasoned = read_claim(Claim("e", "c", "20_model", "metrics/headline/claim"), record)
    assert (reasoned["outcome"], reasoned["reason"]) == ("not resolved", "a model above the floor")
    with pytest.raises(ValueError, match="holds 'maybe'"):
        read_claim(Claim("e", "c", "20_model", "metrics/word"), record)


def test_a_claim_of_parts_needs_every_part(record):
    def outcome(*paths: str) -> str:
        return read_claim(Claim("e", "c", "20_model", tuple(paths)), record)["outcome"]

    assert outcome("metrics/headline/claim", "metrics/bars/a bar/outcome") == "not supported"   # one part fails
    assert outcome("metrics/headline/claim", "metrics/headline/claim") == "not resolved"
    assert outcome("metrics/bars/b bar/outcome", "metrics/bars/b bar/outcome") == "supported"
    assert outcome("metrics/bars/b bar/outcome", "metrics/headline/claim") == "not resolved"
    assert read_claim(Claim("e", "c", "20_model", ("metrics/headline/claim",)), record)["reason"] == \
        "a model above the floor"


def test_read_claim_from_a_measured_number_uses_the_one_rule(record):
    def outcome(line: float, higher: bool) -> str:
        return read_claim(Claim("e", "c", "20_model", measured=("metrics/gap", "metrics/gap_se", line, higher)),
                          record)["outcome"]

    assert outcome(0.0, True) == "supported"           # 0.4 above 0 by 4 SE
    assert outcome(0.35, True) == "not resolved"       # within one SE
    assert outcome(0.6, True) == "not supported"       # below by 2 SE
    assert outcome(0.6, False) == "supported"          # lower is better: 0.4 beats 0.6 by 2 SE
    with pytest.raises(ValueError, match="exactly one of outcome"):
        Claim("e", "c", "20_model")
    with pytest.raises(ValueError, match="exactly one of outcome"):
        Claim("e", "c", "20_model", "metrics/word", measured=("metrics/gap", "metrics/gap_se", 0.0, True))


def test_difference_adds_variances():
    d, se = difference(10.1, 0.93, 4.84, 0.91)
    assert d == pytest.approx(5.26) and se == pytest.approx(math.sqrt(0.93 ** 2 + 0.91 ** 2))
    with pytest.raises(ValueError, match="se_b must be a standard error"):
        difference(1.0, 0.1, 2.0, -0.1)


def test_format_rows_fits_long_names():
    text = format_rows({"real": {"fd": 3.5, "fd_se": 0.8}, "a model with a long name": {"fd": 12.0, "fd_se": 1.0}},
                       ("fd",))
    lines = text.split("\n")
    assert len({len(line) for line in lines}) == 1, lines       # every column lines up


def test_read_entry_reads_only_gpu_runs_at_the_protocols_n(tmp_path):
    write(tmp_path, "20_small", {"headline": {"fd": 12.0, "fd_se": 0.5, "n_gen": 128}})
    write(tmp_path, "21_cpu", {"headline": {"fd": 12.0, "fd_se": 0.5, "n_gen": 384}}, profile="cpu")
    with pytest.raises(ValueError, match="scored on n_gen = 128 clips, not the protocol's 384"):
        read_entry(Entry("x", "y", "z", "20_small"), tmp_path)
    with pytest.raises(ValueError, match="a 'cpu' run; the record reads gpu runs only"):
        read_entry(Entry("x", "y", "z", "21_cpu"), tmp_path)


def test_combined_is_the_rule_for_a_claim_of_parts():
    assert combined(["supported", "supported"]) == "supported"
    assert combined(["supported", "not resolved"]) == "not resolved"
    assert combined(["not resolved", "not supported", "supported"]) == "not supported"
    with pytest.raises(ValueError, match="expected one or more"):
        combined(["met"])
    with pytest.raises(ValueError, match="expected one or more"):
        combined([])
