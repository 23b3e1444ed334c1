"""Secrets of well-known formats (cloud keys, tokens, private keys) for the PII stage, found by
detect-secrets' own format plugins (Yelp/detect-secrets 1.5) so the formats stay maintained upstream.

Only the plugins keyed to a vendor's token format are used. The high-entropy base64/hex plugins
and the keyword plugin are left out on purpose: they flag git SHAs, checksums and test vectors in
code, which are not secrets. Artifactory's pattern (`AP` + a hex digit + 8 characters) fires on
identifiers, and `BasicAuthDetector`'s unbounded `://…:…@` scan is quadratic on hostile input;
both are left out as well. A match must not continue a word on either side, so a token-shaped
piece of a longer identifier is not a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

# Cheap literals that must occur before a plugin's expressions are run at all (speed, and bounds
# the work on hostile input: the expressions then only start at these literals).
_HINTS: dict[str, tuple[str, ...]] = {
    "AWSKeyDetector": ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws", "AWS"),
    "AzureStorageKeyDetector": ("AccountKey=",),
    "DiscordBotTokenDetector": (".",),
    "GitHubTokenDetector": ("gh",),
    "GitLabTokenDetector": ("gl", "GR1348941"),
    "JwtTokenDetector": ("eyJ",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authToken",),
    "OpenAIDetector": ("T3BlbkFJ",),
    "PrivateKeyDetector": ("PRIVATE KEY",),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("SG.",),
    "SlackDetector": ("xox", "XOX", "hooks.slack.com"),
    "SquareOAuthDetector": ("sq0csp-",),
    "StripeDetector": ("k_live_",),
    "TelegramBotTokenDetector": (":",),
    "TwilioKeyDetector": ("AC", "SK"),
}
# A whole PEM block (RFC 7468 §2): the plugin only matches the BEGIN line; the key is the block.
_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY( BLOCK|)-----[A-Za-z0-9+/=\s:,.-]{0,16384}?"
    r"-----END \1PRIVATE KEY\2-----"
)
# Plugins whose first group is the value (`aws_secret_key = "…"`, `:_authToken=…`); in the others
# a group is only the token's prefix (`(ghp|gho)_…`).
_VALUE_GROUP = {"AWSKeyDetector", "NpmDetector"}
_WORD = re.compile(r"\w")
_JWT_START = re.compile(r"(?<![\w.-])eyJ")
_B64_RUN = re.compile(r"[A-Za-z0-9_=-]*")
_JWT_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]{0,4096}")


@cache
def _plugins() -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
    """(plugin class name, its compiled expressions), imported once per process."""
    from detect_secrets.plugins import (
        aws,
        azure_storage_key,
        discord,
        github_token,
        gitlab_token,
        jwt,
        mailchimp,
        npm,
        openai,
        private_key,
        pypi_token,
        sendgrid,
        slack,
        square_oauth,
        stripe,
        telegram_token,
        twilio,
    )

    classes = (
        aws.AWSKeyDetector,
        azure_storage_key.AzureStorageKeyDetector,
        discord.DiscordBotTokenDetector,
        github_token.GitHubTokenDetector,
        gitlab_token.GitLabTokenDetector,
        jwt.JwtTokenDetector,
        mailchimp.MailchimpDetector,
        npm.NpmDetector,
        openai.OpenAIDetector,
        private_key.PrivateKeyDetector,
        pypi_token.PypiTokenDetector,
        sendgrid.SendGridDetector,
        slack.SlackDetector,
        square_oauth.SquareOAuthDetector,
        stripe.StripeDetector,
        telegram_token.TelegramBotTokenDetector,
        twilio.TwilioKeyDetector,
    )
    return tuple((cls.__name__, tuple(cls().denylist)) for cls in classes)


def secret_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, rule) of every secret; spans may overlap (the caller resolves overlaps)."""
    for name, patterns in _plugins():
        if not any(hint in text for hint in _HINTS.get(name, ("",))):
            continue
        if name == "PrivateKeyDetector":
            yield from ((m.start(), m.end(), f"detect_secrets:{name}") for m in _PEM_BLOCK.finditer(text))
            continue
        for pattern in patterns:
            for m in _matches(name, pattern, text):
                span = _value_span(m, name in _VALUE_GROUP)
                if span and name == "JwtTokenDetector":  # its expression stops before the signature
                    span = (span[0], _jwt_end(text, span[1]))
                if span and _standalone(text, *span) and _formally_valid(name, text[span[0] : span[1]]):
                    yield span[0], span[1], f"detect_secrets:{name}"


def _matches(name: str, pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The plugin's matches. The JWT expression has an unbounded run after `eyJ`, so it is tried
    once per run of base64url characters, which keeps `eyJ=eyJ=…` linear instead of quadratic."""
    if name != "JwtTokenDetector":
        yield from pattern.finditer(text)
        return
    scanned = 0
    for start in _JWT_START.finditer(text):
        if start.start() < scanned:
            continue  # inside a run already tried: it ends where the earlier attempt's run ended
        run = _B64_RUN.match(text, start.start())
        scanned = run.end() if run else start.end()
        if m := pattern.match(text, start.start()):
            scanned = max(scanned, m.end())
            yield m


def _jwt_end(text: str, end: int) -> int:
    tail = _JWT_TAIL.match(text, end)
    return tail.end() if tail else end


def _value_span(m: re.Match[str], by_group: bool) -> tuple[int, int] | None:
    """The secret itself: the first non-empty group where the plugin captures the value, else the
    whole match, trimmed of the separators some expressions consume around it."""
    for i in range(1, (m.re.groups if by_group else 0) + 1):
        if m.group(i):
            return m.span(i)
    start, end = m.span()
    while start < end and m.string[start] in " \t\r\n=:\"'":
        start += 1
    while end > start and m.string[end - 1] in " \t\r\n\"'":
        end -= 1
    return (start, end) if end > start else None


def _standalone(text: str, start: int, end: int) -> bool:
    """Not the middle of a longer word (`xSK0123…` in an identifier)."""
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return not (_WORD.match(before) and _WORD.match(text[start])) and not (
        after and _WORD.match(after) and _WORD.match(text[end - 1])
    )


def _formally_valid(name: str, value: str) -> bool:
    """JWTs must decode (the plugin's own check); other formats are fixed by their expression."""
    if name != "JwtTokenDetector":
        return True
    from detect_secrets.plugins.jwt import JwtTokenDetector

    return value.count(".") >= 2 and bool(JwtTokenDetector.is_formally_valid(value))
