from dlq.redaction import REDACTED, redact, redact_text


def test_secret_named_keys_are_redacted_at_any_depth():
    data = {
        "email": "a@b.io",
        "password": "hunter2",
        "nested": {"api_key": "abc", "apiKey": "abc", "Authorization": "Bearer x", "list": [{"access_token": "t"}]},
        "clay_secret": "s",
        "empty_token": "",
    }
    assert redact(data) == {
        "email": "a@b.io",
        "password": REDACTED,
        "nested": {"api_key": REDACTED, "apiKey": REDACTED, "Authorization": REDACTED, "list": [{"access_token": REDACTED}]},
        "clay_secret": REDACTED,
        "empty_token": "",
    }


def test_secret_looking_values_are_redacted_in_text():
    text = "call failed with key sk-ant-api03-abcdefghijklmnop and header Bearer abcdefghijkl to redis://user:pw@host"
    cleaned = redact_text(text)
    assert "sk-ant-api03" not in cleaned and "abcdefghijkl" not in cleaned and ":pw@" not in cleaned
    assert cleaned.count(REDACTED) == 3


def test_ordinary_data_is_untouched():
    data = {"email": "jane@acme.io", "company": "Acme", "employee_count": 10, "tags": ["a", "b"]}
    assert redact(data) == data
