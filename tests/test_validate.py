"""dcseg.validate: each checker returns the value or fails with one line naming the key, the value and what is
allowed."""

import math
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from dcseg.config import ConfigError
from dcseg.validate import (boolean, choice, fraction, half_open_fraction, int_list, integer, non_negative,
                            non_negative_int, number, positive, positive_int, range_pair, text)


@pytest.mark.parametrize("check, value", [
    (positive_int, 3), (positive_int, np.int64(3)), (non_negative_int, 0), (positive, 0.5), (positive, 2),
    (non_negative, 0.0), (fraction, 0), (fraction, 1.0), (half_open_fraction, 0.0), (half_open_fraction, 0.99),
    (boolean, True), (boolean, False), (text, "data/raw"),
])
def test_accepted_values_come_back_unchanged(check, value):
    assert check("a.b", value) is value


@pytest.mark.parametrize("check, value, expected", [
    (positive_int, 0, "an integer >= 1"),
    (positive_int, True, "an integer >= 1"),       # bool is an int subclass in Python
    (positive_int, 32.7, "an integer >= 1"),       # never truncated
    (positive_int, 32.0, "an integer >= 1"),
    (positive_int, "3", "an integer >= 1"),
    (non_negative_int, -1, "an integer >= 0"),
    (positive, 0, "a number > 0"),
    (positive, False, "a number > 0"),
    (positive, math.inf, "a number > 0"),
    (non_negative, -0.1, "a number >= 0"),
    (non_negative, math.nan, "a number >= 0"),
    (non_negative, "abc", "a number >= 0"),
    (fraction, 1.5, r"a number in \[0, 1\]"),
    (fraction, True, r"a number in \[0, 1\]"),
    (half_open_fraction, 1.0, r"a number in \[0, 1\)"),
    (boolean, "maybe", "true or false"),
    (boolean, 1, "true or false"),
    (text, "", "a non-empty string"),
    (text, 3, "a non-empty string"),
    (text, None, "a non-empty string"),
])
def test_refused_values_name_key_value_and_what_is_allowed(check, value, expected):
    with pytest.raises(ConfigError, match=rf"^a\.b is {_re(value)}; expected {expected}$"):
        check("a.b", value)


def _re(value):
    return re.escape(repr(value))


def test_integer_with_and_without_minimum():
    assert integer("k", -5) == -5
    with pytest.raises(ConfigError, match=r"k is 1\.5; expected an integer$"):
        integer("k", 1.5)
    with pytest.raises(ConfigError, match=r"k is 2; expected an integer >= 3"):
        integer("k", 2, minimum=3)


def test_number_interval_wording():
    assert number("k", 1, 0, 1, low_open=True) == 1
    with pytest.raises(ConfigError, match=r"k is 0; expected a number in \(0, 1\]"):
        number("k", 0, 0, 1, low_open=True)
    with pytest.raises(ConfigError, match=r"k is 5; expected a number <= 2"):
        number("k", 5, high=2)


def test_choice_is_type_strict_between_bools_and_ints():
    assert choice("k", "auto", ("auto", True, False)) == "auto"
    assert choice("k", True, ("auto", True, False)) is True
    with pytest.raises(ConfigError, match=r"k is 1; expected one of \['auto', True, False\]"):
        choice("k", 1, ("auto", True, False))
    with pytest.raises(ConfigError, match=r"k is True; expected one of \[1, 2\]"):
        choice("k", True, (1, 2))
    with pytest.raises(ConfigError, match=r"data\.source is 'brats'; expected one of \['phantom', 'brats2020'\]"):
        choice("data.source", "brats", ("phantom", "brats2020"))


def test_int_list_accepts_lists_tuples_and_omegaconf_lists():
    assert int_list("k", [1, 2, 3], 3) == (1, 2, 3)
    assert int_list("k", OmegaConf.create([32, 32, 32]), 3, minimum=1) == (32, 32, 32)


@pytest.mark.parametrize("value", ["abc", [32.7, 32, 32], [32, 32], [32, 32, 32, 32], [0, 32, 32], [True, 2, 3],
                                   32, None])
def test_int_list_refusals(value):
    expected = "a list of 3 integers >= 1"
    with pytest.raises(ConfigError, match=rf"^preprocess\.min_size is {_re(value)}; expected {expected}$"):
        int_list("preprocess.min_size", value, 3, minimum=1)


def test_int_list_shows_an_omegaconf_value_as_written():
    with pytest.raises(ConfigError, match=r"k is \[32\.7, 32, 32\]; expected a list of 3 integers$"):
        int_list("k", OmegaConf.create([32.7, 32, 32]), 3)


def test_range_pair():
    assert range_pair("r", [1, 2.5]) == (1, 2.5)
    assert range_pair("r", OmegaConf.create([0.5, 0.5]), fraction) == (0.5, 0.5)
    with pytest.raises(ConfigError, match=r"r is \[3, 1\]; expected \[low, high\] with low <= high"):
        range_pair("r", [3, 1])
    with pytest.raises(ConfigError, match=r"r is 'abc'; expected \[low, high\]$"):
        range_pair("r", "abc")
    with pytest.raises(ConfigError, match=r"r is \[1, 2, 3\]; expected \[low, high\]$"):
        range_pair("r", [1, 2, 3])
    # a bound is checked by `element` and named by its index
    with pytest.raises(ConfigError, match=r"r\[1\] is 1\.5; expected a number in \[0, 1\]"):
        range_pair("r", [0.5, 1.5], fraction)


def test_config_error_prints_as_its_message():
    with pytest.raises(ConfigError) as info:
        positive_int("train.steps", -1)
    assert str(info.value) == "train.steps is -1; expected an integer >= 1"
