"""Schemathesis hooks that let the fuzzer reach real accounts with a real token.

A fuzzer that only knows the document draws `AccountId`s at random, and every one of them is a 404: the operations
behind a real account would never be exercised. With these hooks, whenever Schemathesis draws an `AccountId` that the
document allows (so the case stays what it was meant to be, valid or not), it may use instead one of the real ids in
`FUZZ_ACCOUNT_IDS` (comma-separated, as `GET /accounts` named them for the token in use). The drawn id stays among the
choices, so unknown ids are still tried.

Consent ids work the same way: `FUZZ_CONSENT_IDS` are real consents of the calling application, tried in place of
`ConsentId`s the fuzzer draws.

The token is not a hook's business: the configuration (`ais.toml`) sends it on every call from `FUZZ_BEARER_TOKEN`,
kept out of the command line, where other local users could read it. Schemathesis knows it for the credential it
is, and its `ignored_auth` check calls again without it and with a made-up one.

Load with `SCHEMATHESIS_HOOKS=hooks` and this directory on `PYTHONPATH` (see README.md).
"""

import os
import re

import schemathesis
from hypothesis import strategies as st


def _ids(name):
    return [value for value in os.environ.get(name, "").split(",") if value]


ACCOUNT_IDS = _ids("FUZZ_ACCOUNT_IDS")
CONSENT_IDS = _ids("FUZZ_CONSENT_IDS")

# The standard's `AccountId`: OBIE Max40Text, characters safe in a URL path.
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,40}$")

# The platform document's `ConsentId`.
CONSENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


def _substitute(path_parameters, name, pattern, real):
    """The drawn value of `name` or one of `real`, when the drawn one is in the document's shape."""
    drawn = path_parameters[name]
    if not isinstance(drawn, str) or not pattern.fullmatch(drawn):
        return st.just(path_parameters)
    return st.sampled_from([drawn, *real]).map(lambda chosen: {**path_parameters, name: chosen})


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    if path_parameters and ACCOUNT_IDS and "AccountId" in path_parameters:
        return _substitute(path_parameters, "AccountId", ACCOUNT_ID, ACCOUNT_IDS)
    if path_parameters and CONSENT_IDS and "ConsentId" in path_parameters:
        return _substitute(path_parameters, "ConsentId", CONSENT_ID, CONSENT_IDS)
    return st.just(path_parameters)
