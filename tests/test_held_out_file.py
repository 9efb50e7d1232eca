"""task.test_path: a held-out file is validated up front, used as is, and no number set of it is trained on;
`r1lab puzzles` writes one; a run's data files and baselines are recorded."""

import json

import pytest

from r1lab.cli import main as r1lab_main
from r1lab.data import record_splits
from r1lab.tasks import countdown
from r1lab.validation import problems
from tests.conftest import compose

# The laptop-aha spike's setting: a small space of number sets, so held-out sets cover a good share of it.
LAPTOP = ["task.generator.min_count=3", "task.generator.max_count=3", "task.generator.max_number=15",
          "task.generator.max_target=100"]


def number_sets(rows):
    return {countdown.number_set(row) for row in rows}


def test_generated_splits_are_disjoint_by_number_set():
    cfg = compose(*LAPTOP, "task.num_train=1500", "task.num_test=300").task
    train, test = countdown.load_splits(cfg, seed=0)
    assert (len(train), len(test)) == (1500, 300)
    assert not number_sets(train) & number_sets(test)


def test_puzzles_cli_writes_a_file_that_becomes_the_held_out_set(tmp_path, capsys):
    path = tmp_path / "held_out.jsonl"
    assert r1lab_main(["puzzles", "--out", str(path), "--n", "200", "--seed", "7", *LAPTOP,
                       "target=uniform_reachable"]) == 0
    rows = countdown.read_puzzle_file(path)
    assert len(rows) == 200 and len({countdown._key(r) for r in rows}) == 200
    for row in rows:
        assert len(row["nums"]) == 3 and all(1 <= n <= 15 for n in row["nums"])
        assert countdown.solve(row["nums"], row["target"]) is not None
    assert rows == countdown.generate_tasks(compose(*LAPTOP, "task.generator.target=uniform_reachable").task.generator, 200, 7)

    cfg = compose(*LAPTOP, f"task.test_path={path}", "task.num_train=1000")
    assert problems(cfg) == []
    train, test = countdown.load_splits(cfg.task, seed=0)
    assert test.to_list() == rows  # exactly the file, in its order
    assert len(train) == 1000 and not number_sets(train) & number_sets(rows)


def test_puzzles_cli_rejects_a_bad_generator(tmp_path, capsys):
    assert r1lab_main(["puzzles", "--out", str(tmp_path / "x.jsonl"), "--n", "5", "--seed", "0", "target=nope"]) == 2
    assert "task.generator.target must be one of" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(("line", "message"), [
    ('{"nums": [1, 2, 3], "target": 6', "line 2: not JSON"),
    ('{"nums": [1, 2, 3]}', 'line 2: expected an object with exactly the keys "nums" and "target"'),
    ('{"nums": [1, 2, 3], "target": 6, "x": 1}', "line 2: expected an object"),
    ('{"nums": [1, 2.5, 3], "target": 6}', 'line 2: "nums" must be a list of 2 to 5 integers'),
    ('{"nums": [1, true], "target": 6}', 'line 2: "nums" must be a list'),
    ('{"nums": [1, 2, 3, 4, 5, 6], "target": 6}', 'line 2: "nums" must be a list'),
    ('{"nums": [1, 2, 3], "target": "6"}', 'line 2: "target" must be an integer'),
    ('{"nums": [2, 1, 3], "target": 6}', "line 2: repeats the puzzle of line 1"),
])
def test_a_bad_held_out_file_is_reported_with_file_and_line_before_any_compute(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"nums": [1, 2, 3], "target": 6}\n' + line + "\n")
    (found,) = problems(compose(f"task.test_path={path}"))
    assert found.startswith(f"task.test_path: {path}, {message}")


def test_missing_or_empty_held_out_file(tmp_path):
    (missing,) = problems(compose(f"task.test_path={tmp_path / 'nope.jsonl'}"))
    assert missing.startswith("task.test_path: cannot read puzzle file") and "nope.jsonl" in missing
    (tmp_path / "empty.jsonl").write_text("\n")
    (empty,) = problems(compose(f"task.test_path={tmp_path / 'empty.jsonl'}"))
    assert "holds no puzzles" in empty


def test_a_run_records_its_exact_data_and_baselines(tmp_path):
    cfg = compose(*LAPTOP, "task.num_train=50", "task.num_test=20", "eval.num_prompts=8",
                  "task.generator.target=uniform_reachable")
    train, test = countdown.load_splits(cfg.task, seed=0)
    baselines = record_splits(cfg, train, test, tmp_path / "data")
    assert countdown.read_puzzle_file(tmp_path / "data" / "train.jsonl") == train.to_list()
    assert countdown.read_puzzle_file(tmp_path / "data" / "test.jsonl") == test.to_list()
    # The baselines are those of the 8 puzzles the evaluation scores.
    assert baselines == countdown.baselines(cfg.task, test.to_list()[:8])
    assert json.loads((tmp_path / "data" / "baselines.json").read_text()) == baselines
    assert set(baselines) == {"best_target_blind", "sum_of_all", "random_valid_expression"}
