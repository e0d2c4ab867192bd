"""Text that quotes a secret, one of each kind resilience.redaction knows, for the tests of every place a
failure is recorded. Each secret is unique, so a test can look for it anywhere (a row, a log, an event)."""

# A token shaped like access.auth.new_token() makes one, and an Anthropic key.
API_TOKEN = "rsl_" + "Q3x9VtY7bN2mK5pL8rT1wZ4cF6hJ0dS-aE_gU"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq8Rw3Lx0Pn6Tm1Yk4Hv7Jc2Fb5Gd9Se-Ua_Ko"

# (text, the secret in it)
SAMPLES: list[tuple[str, str]] = [
    ("x:Hunter2Url@evil", "Hunter2Url"),                                # user:password@host, no scheme
    ("redis://:RedisOnlyPw99@cache.internal:6379/0", "RedisOnlyPw99"),  # password-only URL
    ("https://bob:HttpUserPw77@example.com/path", "HttpUserPw77"),      # user:password URL
    ("jane@acme.io password=KeyEqualsPw11&next=1", "KeyEqualsPw11"),    # key=value
    ("retry with api_key: KeyColonKey22", "KeyColonKey22"),             # key: value
    ('{"token": "JsonQuotedTok33", "email": "a@b.io"}', "JsonQuotedTok33"),  # JSON "key": "value"
    ("client_secret='QuotedSecret44'", "QuotedSecret44"),               # key='value'
    ("Authorization: Basic dXNlcjpCYXNpY1B3NTU=", "dXNlcjpCYXNpY1B3NTU="),
    ("Authorization: Bearer BearerTok66abcdef", "BearerTok66abcdef"),
    (f"token was {API_TOKEN}", API_TOKEN),
    (f"model call with {ANTHROPIC_KEY} failed", ANTHROPIC_KEY),
]
SAMPLE_IDS = ["url-no-scheme", "url-password-only", "url-user-password", "key=value", "key: value", "json",
              "quoted", "basic", "bearer", "rsl-token", "anthropic-key"]
