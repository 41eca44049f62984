"""Where media files go: local disk by default, S3-compatible object storage (AWS S3, MinIO, Tencent
COS) when MEDIA_S3_BUCKET is set, through django-storages. Paths are tenant-scoped either way
(conversations.models.media_path puts the schema first)."""

from __future__ import annotations

from collections.abc import Callable

LOCAL = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def media_storage(get: Callable[[str], str | None]) -> dict:
    """The STORAGES["default"] entry for this environment (`get` reads a variable, as config.env.get)."""
    bucket = get("MEDIA_S3_BUCKET")
    if not bucket:
        return LOCAL
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": bucket,
        "endpoint_url": get("MEDIA_S3_ENDPOINT_URL") or None,  # None: AWS itself
        "region_name": get("MEDIA_S3_REGION") or None,
        "access_key": get("MEDIA_S3_ACCESS_KEY") or None,  # None: the machine's own AWS credentials
        "secret_key": get("MEDIA_S3_SECRET_KEY") or None,
        # Private: the agent screens stream files to signed-in agents; nothing links to the bucket.
        "default_acl": "private", "querystring_auth": True, "file_overwrite": False,
    }}
