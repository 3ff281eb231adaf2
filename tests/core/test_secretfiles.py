"""Which credential files a sync needs, and the sentence naming those that are missing."""

from __future__ import annotations

from stoker_core.secretfiles import SecretFile, missing_sentence, needed

KEY = SecretFile(path="/k/apiKey", purpose="the gateway API key", secret="api", gateway_only=True)
TOKEN = SecretFile(path="/g/token", purpose="the Git token", secret="git")


def test_the_gateway_api_key_is_not_needed_by_a_sync_that_does_not_talk_to_the_gateway() -> None:
    assert needed((KEY, TOKEN), gateway=False) == (TOKEN,)
    assert needed((KEY, TOKEN), gateway=True) == (KEY, TOKEN)


def test_the_sentence_names_each_missing_secret_key_and_file_and_how_to_go_on() -> None:
    text = missing_sentence([KEY, TOKEN])
    assert "the gateway API key: Secret 'api' key 'apiKey' (/k/apiKey)" in text
    assert "the Git token: Secret 'git' key 'token' (/g/token)" in text
    assert "credentials are missing" in text
    assert "create the Secret" in text
    assert missing_sentence([]) == ""
    outside = missing_sentence([SecretFile(path="/etc/token", purpose="the Git token")])
    assert outside.endswith("create the file")
