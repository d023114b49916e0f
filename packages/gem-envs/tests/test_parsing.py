import re

import pytest

from gem_envs.parsing import last_answer_tag, last_boxed, match_action


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{up}", "up"),
        ("first \\boxed{a} then \\boxed{b}", "b"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{unclosed", None),
        ("no box", None),
        ("\\boxed", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_answer_tag():
    assert last_answer_tag("<answer> Up </answer> <answer>Left</answer>") == "Left"
    assert last_answer_tag("<answer>\nDown\n</answer>") == "Down"
    assert last_answer_tag("<answer>Up") is None


def test_match_action_takes_last_group_of_first_match():
    think = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL)
    assert match_action("<think>go</think> <answer> Right </answer>", think) == "Right"
    assert match_action("<answer>Right</answer>", think) is None
