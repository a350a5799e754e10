"""``engines.remote.http``: what a provider's own error text may carry back to a client."""

from __future__ import annotations

from imagehub.engines.remote.http import scrub_secret

KEY = "gemini-secret-canary-123"


def test_the_key_is_masked_whole_upper_cased_or_cut_short() -> None:
    text = (f"API key not valid: {KEY} / {KEY.upper()} / key={KEY[:17]}, "
            f"prefix {KEY[:8]}; model gemini-3.1-flash-image")
    scrubbed = scrub_secret(text, KEY)
    assert scrubbed == ("API key not valid: *** / *** / key=***, prefix ***; "
                        "model gemini-3.1-flash-image")


def test_the_key_glued_to_other_text_is_masked_too() -> None:
    assert scrub_secret(f"Bearer%20{KEY}%20x token{KEY.upper()}tail ß{KEY[2:12]}İ", KEY) == \
        "Bearer%20***%20x token***tail ß***İ"


def test_text_that_shares_no_run_of_eight_with_the_key_is_left_alone() -> None:
    text = "Request payload size exceeds the limit: 20971520 bytes (RESOURCE_EXHAUSTED)"
    assert scrub_secret(text, KEY) == text
    assert scrub_secret("short key abc here", "abc") == "short key *** here"
    assert scrub_secret("no key configured", "") == "no key configured"
