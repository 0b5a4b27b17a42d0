"""The limits on what an event may hold: one set, read by ingest (which refuses what passes
them, naming the field) and by every consumer (which decodes with the same contracts, so
nothing ingest accepted is refused later). docs/ingest.md lists them; architecture §5.11.

Request-level limits (body size, events per batch, bytes per event) are ingest's own, in
kizashi.ingest.limits.
"""

from datetime import UTC, datetime

# Ids: account_id, event_id, user_id, decision makers, and Segment's userId/groupId/messageId.
MAX_ID_LENGTH = 128
MAX_SHORT_TEXT_LENGTH = 256
# A rep_observation's free-text `note`.
MAX_NOTE_LENGTH = 2000

# `properties` and `attributes`: nested objects and lists at most this deep (the object itself
# is level 1). Checked without recursion; every consumer's JSON parser goes deeper than this.
MAX_JSON_DEPTH = 32

# Event times, compared after normalising to UTC: the Unix epoch to the end of year 9999, so
# every accepted time converts to UTC and to epoch seconds (0001-01-01T00:00:00+14:00 is in
# year 0 in UTC, which Python's datetime cannot hold).
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

# An account's `attributes` (free-form CRM traits). Per account_update: at most
# MAX_ATTRIBUTE_KEYS keys, each 1..MAX_ATTRIBUTE_KEY_LENGTH characters, and each attribute
# (its key and value, serialised as JSON) at most MAX_ATTRIBUTE_BYTES. Per account, scoring
# keeps the MAX_ATTRIBUTE_KEYS most recently written keys (kizashi.scoring.attributes), so an
# account's attributes never pass MAX_ATTRIBUTE_KEYS × (MAX_ATTRIBUTE_BYTES + 2) bytes, which
# is under MAX_ACCOUNT_ATTRIBUTES_BYTES.
MAX_ATTRIBUTE_KEYS = 200
MAX_ATTRIBUTE_KEY_LENGTH = 128
MAX_ATTRIBUTE_BYTES = 320
MAX_ACCOUNT_ATTRIBUTES_BYTES = 64 * 1024
assert MAX_ATTRIBUTE_KEYS * (MAX_ATTRIBUTE_BYTES + 2) + 2 <= MAX_ACCOUNT_ATTRIBUTES_BYTES
