import pytest

from resilience.env import ConfigError, env_rate


@pytest.mark.parametrize(
    "raw, expected",
    [("50/min", (50, 60.0)), ("20/m", (20, 60.0)), ("5/s", (5, 1.0)), ("300/h", (300, 3600.0)),
     ("30/5s", (30, 5.0)), ("10/1.5min", (10, 90.0)), (" 7 / minute ", (7, 60.0)), ("0", None), ("off", None)],
)
def test_rates_are_parsed(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_RATE", raw)
    assert env_rate("SOME_RATE", "1/s") == expected


@pytest.mark.parametrize("raw", ["fast", "50", "50/fortnight", "-1/min", "0/min", "5/0s", "1/./s"])
def test_bad_rates_are_refused_with_one_line(monkeypatch, raw):
    monkeypatch.setenv("SOME_RATE", raw)
    with pytest.raises(ConfigError) as info:
        env_rate("SOME_RATE", "1/s")
    assert str(info.value).startswith("SOME_RATE=") and "\n" not in str(info.value)
