"""Pseudonyms and per-patient date offsets, both keyed on PSEUDONYM_KEY (HMAC-SHA256).

A patient's pseudonym is HMAC-SHA256(key, research_id), where `research_id` is the random id
given to every patient at creation (never the clinic reference). It is the first 24 hex digits
(96 bits) of the MAC: stable for a key, so repeated exports join; unlinkable under another key;
and with 96 bits a collision among even a million patients has a probability below 1e-16.

The date offset for `--shift-dates` is derived from a second HMAC under the same key with a
distinct message prefix, so knowing a pseudonym reveals nothing about its offset. It is a
whole number of days between -365 and +365, never 0, the same for all of a patient's dates, so
intervals and times of day are preserved while calendar dates are not.

Exported record ids (administrations, lab values) are keyed hashes too, never database ids:
row ids grow with time across all patients, so comparing them between two patients' shifted
rows would give back each patient's offset (docs/security.md, "Date shifting").
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hashlib import _Hash

PSEUDONYM_HEX_DIGITS: Final = 24
MAX_SHIFT_DAYS: Final = 365
_SHIFT_PREFIX: Final = b"spondybot-date-shift\x00"
_RECORD_PREFIX: Final = b"spondybot-record\x00"
_CACHE_SIZE: Final = 50_000
_BLOCK: Final = hashlib.sha256().block_size
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))


class Pseudonymizer:
    """Turns research ids into pseudonyms and date offsets for one key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key
        self._cache: dict[str, tuple[str, timedelta]] = {}
        self._record_macs: dict[str, tuple[_Hash, _Hash]] = {}

    def pseudonym(self, research_id: str) -> str:
        """The patient's pseudonym: 24 lowercase hex digits of HMAC-SHA256(key, research_id)."""
        return self._lookup(research_id)[0]

    def date_offset(self, research_id: str) -> timedelta:
        """The patient's secret date shift: ±1 to ±365 whole days, stable for the key."""
        return self._lookup(research_id)[1]

    def record_id(self, kind: str, row_id: int) -> str:
        """An exported record's id: 24 hex digits of HMAC-SHA256(key, kind and database id).

        Stable for a key, so the wide and long tables and the FHIR resources still join, but it
        orders nothing: it says neither when the record was made nor how many came before.
        """
        keyed = self._record_macs.get(kind)
        if keyed is None:
            keyed = self._record_macs[kind] = self._keyed_hashes(
                _RECORD_PREFIX + f"{kind}\x00".encode("ascii")
            )
        # HMAC (RFC 2104) from two SHA-256 states hashed once per export, the inner one already
        # fed the key's padding and the common prefix: each row copies them, not an `hmac`
        # object (half the time, same bytes).
        inner, outer = keyed[0].copy(), keyed[1].copy()
        inner.update(str(row_id).encode("ascii"))
        outer.update(inner.digest())
        return outer.hexdigest()[:PSEUDONYM_HEX_DIGITS]

    def _keyed_hashes(self, prefix: bytes) -> tuple[_Hash, _Hash]:
        """HMAC-SHA256's inner hash fed the padded key and `prefix`, and its outer hash fed the
        padded key."""
        key = self._key if len(self._key) <= _BLOCK else hashlib.sha256(self._key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return (
            hashlib.sha256(key.translate(_INNER_PAD) + prefix),
            hashlib.sha256(key.translate(_OUTER_PAD)),
        )

    def _lookup(self, research_id: str) -> tuple[str, timedelta]:
        cached = self._cache.get(research_id)
        if cached is not None:
            return cached
        if len(self._cache) >= _CACHE_SIZE:
            # Bounded, so memory stays flat however many patients an export covers.
            self._cache.clear()
        message = research_id.encode("utf-8")
        pseudonym = hmac.new(self._key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]
        digest = hmac.new(self._key, _SHIFT_PREFIX + message, hashlib.sha256).digest()
        draw = int.from_bytes(digest[:8], "big") % (2 * MAX_SHIFT_DAYS)
        days = draw // 2 + 1
        offset = timedelta(days=days if draw % 2 else -days)
        self._cache[research_id] = (pseudonym, offset)
        return pseudonym, offset
