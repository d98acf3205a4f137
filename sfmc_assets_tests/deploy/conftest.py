"""A local S3 API for the object-storage tests: moto's server on loopback, started once per session.

The tests talk to it over HTTP exactly as production talks to S3: s3fs (writes) and Polars' own reader
(scans) find it through the standard AWS variables (`AWS_ENDPOINT_URL`, credentials, region), which is
also how a deployment points the lake at MinIO or another S3-compatible store. One server per session:
fsspec caches filesystems per process, so the endpoint must not change between tests.
"""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]

    def client(self) -> Any:  # boto3's client classes are generated at run time
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ALLOW_HTTP": "true"}  # Polars' object store refuses plain http without it
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process reads the lake too (assertions)
    try:
        yield S3(endpoint, env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
