"""Domain exceptions. Storage modules wrap botocore's ClientError into these with ``raise ... from``."""


class NbamlError(Exception):
    """Base class of every error nbaml raises on purpose."""


class ConfigurationError(NbamlError):
    """The environment a function was given is missing or malformed."""


class NotBuiltError(NbamlError):
    """A part of the system that is declared but not implemented yet; names the missing part."""


class StorageError(NbamlError):
    """An AWS storage call failed (S3, DynamoDB, SSM)."""


class NotFoundError(StorageError):
    """The object, item or parameter asked for does not exist."""


class ConflictError(StorageError):
    """A conditional write lost: someone else holds the lock, or the item changed underneath us."""


class FeedError(NbamlError):
    """A game feed failed after its retries (network, HTTP status, unparseable payload)."""


class FeedAuthError(FeedError):
    """The feed's key is missing or was rejected; retrying cannot help."""


class BundleIntegrityError(NbamlError):
    """A model bundle is incomplete, or a file's SHA-256 does not match its manifest."""


class UnknownTeamError(NbamlError, ValueError):
    """A team name or abbreviation that maps to none of the 30 franchises."""


class InsufficientDataError(NbamlError, ValueError):
    """Too few completed games to train or evaluate; backfill history first."""
