import random
import re

import pytest

import gem_envs
from gem_envs import EnvConfigError, ResetNeeded
from gem_envs.envs._common import TERMINAL_STATE
from gem_envs.envs.arithmetic import ArithmeticEnv, evaluate

QUESTION = re.compile(r"Compute (.+)\. Put your final answer within \\boxed\{\}\.")


def expression(question: str) -> str:
    match = QUESTION.fullmatch(question)
    assert match, question
    return match[1]


def test_evaluate_gives_multiplication_precedence():
    assert evaluate([2, 3, 4], ["+", "*"]) == 14
    assert evaluate([2, 3, 4], ["*", "-"]) == 2
    assert evaluate([10, 2, 3], ["-", "-"]) == 5
    assert evaluate([10, 2, 3, 2], ["-", "*", "+"]) == 6


def test_questions_follow_the_parameters_and_the_answer_is_their_value():
    env = gem_envs.make("math:Arithmetic-v0")
    counts = set()
    for seed in range(200):
        question, info = env.reset(seed=seed)
        tokens = expression(question).split()
        operands, operators = [int(t) for t in tokens[::2]], tokens[1::2]
        counts.add(len(operands))
        assert info == {} and set(operators) <= set("+-*") and all(1 <= x <= 100 for x in operands)
        assert env.answer == eval(expression(question))  # independent check of evaluate()
    assert counts == {2, 3}


@pytest.mark.parametrize("template", ["\\boxed{%s}", "so \\boxed{0} no, \\boxed{ %s }", "\\boxed{%s.0}"])
def test_a_correct_boxed_answer_pays_one_and_ends_the_single_turn(template):
    env = ArithmeticEnv(min_operand=1000, max_operand=2000, num_operands=2, operators="*")
    env.reset(seed=1)
    observation, reward, terminated, truncated, info = env.step(template % env.answer)
    assert (observation, reward, terminated, truncated, info) == (
        TERMINAL_STATE,
        1.0,
        True,
        True,
        {"correct": True},
    )
    with pytest.raises(ResetNeeded):
        env.step("\\boxed{1}")


def test_thousands_separators_are_accepted():
    env = ArithmeticEnv(min_operand=1000, max_operand=2000, num_operands=2, operators="+")
    env.reset(seed=0)
    assert env.step(f"\\boxed{{{env.answer:,}}}")[1] == 1.0


@pytest.mark.parametrize(
    "make_action",
    [
        lambda answer: f"\\boxed{{{answer + 1}}}",
        lambda answer: f"the answer is {answer}",  # right, but not boxed
        lambda answer: f"\\boxed{{{answer}",  # never closed
        lambda answer: "\\boxed{x}",
        lambda answer: "",
    ],
)
def test_wrong_or_unboxed_answers_pay_zero(make_action):
    env = gem_envs.make("math:Arithmetic-v0")
    env.reset(seed=2)
    assert env.step(make_action(env.answer)) == (TERMINAL_STATE, 0.0, True, True, {"correct": False})


def test_terminal_state_uses_fullwidth_bars():
    assert TERMINAL_STATE == "<\uff5cTERMINAL_STATE\uff5c>"


def test_same_seed_same_question_envs_independent_and_global_random_untouched():
    state = random.getstate()
    a, b = ArithmeticEnv(seed=5), ArithmeticEnv(seed=5)
    first = [a.reset()[0] for _ in range(5)]
    second = []
    for _ in range(5):
        ArithmeticEnv(seed=6).reset()
        second.append(b.reset()[0])
    assert first == second and len(set(first)) > 1
    assert a.reset(seed=9)[0] == b.reset(seed=9)[0]
    assert a.step(a.sample_random_action())[2]
    assert random.getstate() == state


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_operand": 10, "max_operand": 5}, "max_operand"),
        ({"min_operand": -1}, "min_operand"),
        ({"num_operands": 1}, "num_operands"),
        ({"num_operands": (3, 2)}, "num_operands"),
        ({"num_operands": (2, 3, 4)}, "num_operands"),
        ({"operators": "/"}, "operators"),
        ({"operators": ""}, "operators"),
    ],
)
def test_bad_constructor_values_name_the_field(kwargs, field):
    with pytest.raises(EnvConfigError, match=field) as err:
        ArithmeticEnv(**kwargs)
    if field == "operators":
        assert "'+-*'" in str(err.value)
