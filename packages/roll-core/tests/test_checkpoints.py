"""The checkpoint folder: complete or absent, pruned to `keep`, `resume_from_checkpoint` resolved."""

import pytest

from roll.agentic.checkpoints import PIPELINE_STATE, CheckpointDir


def _save(ckpts: CheckpointDir, step: int) -> None:
    with ckpts.writing(step) as tmp:
        (tmp / PIPELINE_STATE).write_text(str(step))


def test_saves_are_renamed_into_place_and_pruned_to_keep(tmp_path):
    ckpts = CheckpointDir(tmp_path / "ck", keep=2)
    for step in (1, 2, 10, 11):  # 10 sorts before 2 as text: the order must be numeric
        _save(ckpts, step)
    assert [p.name for p in ckpts.saved()] == ["checkpoint-10", "checkpoint-11"]
    assert ckpts.resume_path(True) == tmp_path / "ck" / "checkpoint-11"


def test_a_save_that_fails_leaves_no_checkpoint(tmp_path):
    ckpts = CheckpointDir(tmp_path / "ck", keep=None)
    _save(ckpts, 1)
    with pytest.raises(OSError, match="disk full"), ckpts.writing(2) as tmp:
        (tmp / "actor_train").mkdir()
        raise OSError("disk full")
    assert [p.name for p in ckpts.saved()] == ["checkpoint-1"]
    _save(ckpts, 2)  # the next save clears the temporary folder of the failed one
    assert [p.name for p in ckpts.saved()] == ["checkpoint-1", "checkpoint-2"]
    assert not list((tmp_path / "ck").glob(".tmp-*"))


def test_resume_setting_is_resolved_or_refused_with_the_reason(tmp_path):
    ckpts = CheckpointDir(tmp_path / "ck", keep=None)
    assert ckpts.resume_path(False) is None and ckpts.resume_path("") is None
    with pytest.raises(FileNotFoundError, match="no checkpoint-\\* under"):
        ckpts.resume_path(True)
    with pytest.raises(FileNotFoundError, match="is not a roll checkpoint"):
        ckpts.resume_path(str(tmp_path))
    _save(ckpts, 3)
    assert ckpts.resume_path(str(tmp_path / "ck" / "checkpoint-3")) == tmp_path / "ck" / "checkpoint-3"
