"""Media storage: local disk unless an S3-compatible bucket is configured, then django-storages' S3."""

from django.core.files.storage import storages
from django.utils.module_loading import import_string

from config.storage import LOCAL, media_storage


def env_of(**values):
    return values.get


def test_local_disk_without_a_bucket():
    assert media_storage(env_of()) == LOCAL
    assert media_storage(env_of(MEDIA_S3_BUCKET="")) == LOCAL


def test_a_bucket_selects_private_s3_storage_with_its_endpoint_and_keys():
    config = media_storage(env_of(MEDIA_S3_BUCKET="wecomdesk-media", MEDIA_S3_ENDPOINT_URL="https://cos.example",
                                  MEDIA_S3_ACCESS_KEY="AK", MEDIA_S3_SECRET_KEY="SK"))
    assert config["BACKEND"] == "storages.backends.s3.S3Storage"
    options = config["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"], options["access_key"], options["secret_key"]) == (
        "wecomdesk-media", "https://cos.example", "AK", "SK")
    assert (options["default_acl"], options["querystring_auth"], options["file_overwrite"]) == ("private", True, False)
    # The backend is installed and takes these options (building it opens no connection).
    storage = import_string(config["BACKEND"])(**options)
    assert storage.bucket_name == "wecomdesk-media" and storage.default_acl == "private"


def test_the_tests_themselves_use_the_local_disk():
    assert type(storages["default"]).__name__ == "FileSystemStorage"
