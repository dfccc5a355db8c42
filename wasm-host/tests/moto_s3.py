"""The independent S3 client of wasm-host/tests/spin_s3_backup.rs and
sdap-cli/tests/s3.rs: boto3 (botocore's own SigV4) against a moto server the
test started.

  moto_s3.py setup ENDPOINT BUCKET
      Creates an IAM user with an access key allowed s3:*, and the bucket,
      then switches on moto's request authentication (POST
      /moto-api/reset-auth 0): from then on moto recomputes every request's
      SigV4 signature with that user's secret and refuses a mismatch.
      Prints {"access_key_id": ..., "secret_access_key": ...}.
  moto_s3.py fetch ENDPOINT BUCKET KEY_ID SECRET PREFIX DIR
      Downloads every object under PREFIX to DIR/<key>; prints the keys.
  moto_s3.py fill ENDPOINT BUCKET KEY_ID SECRET PREFIX COUNT
      Puts COUNT small objects PREFIX00000, PREFIX00001, ...; prints COUNT.
  moto_s3.py refused ENDPOINT BUCKET KEY_ID SECRET
      Lists the bucket with these credentials and prints the error code
      the server answered (or "accepted").

Every answer is one JSON line on stdout; failures exit non-zero.
"""

import json
import os
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"


def client(service, endpoint, key_id="testing", secret="testing"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        # Path-style, as the Spin adapter addresses objects.
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def setup(endpoint, bucket):
    iam = client("iam", endpoint)
    iam.create_user(UserName="memshadow-backup")
    iam.put_user_policy(
        UserName="memshadow-backup",
        PolicyName="backups",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="memshadow-backup")["AccessKey"]
    client("s3", endpoint).create_bucket(Bucket=bucket)
    # text/plain: moto reads the raw body, which a form content type hides.
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"content-type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        if res.status != 200:
            sys.exit(f"reset-auth answered {res.status}")
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))


def fetch(endpoint, bucket, key_id, secret, prefix, out):
    s3 = client("s3", endpoint, key_id, secret)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    for key in keys:
        path = os.path.join(out, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, key, path)
    print(json.dumps(sorted(keys)))


def fill(endpoint, bucket, key_id, secret, prefix, count):
    s3 = client("s3", endpoint, key_id, secret)
    for i in range(int(count)):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{i:05d}", Body=b"x")
    print(json.dumps(int(count)))


def refused(endpoint, bucket, key_id, secret):
    try:
        client("s3", endpoint, key_id, secret).list_objects_v2(Bucket=bucket)
    except ClientError as e:
        print(json.dumps(e.response["Error"]["Code"]))
        return
    print(json.dumps("accepted"))


COMMANDS = {"setup": (setup, 2), "fetch": (fetch, 6), "fill": (fill, 6), "refused": (refused, 4)}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in COMMANDS or len(sys.argv) - 2 != COMMANDS[name][1]:
        sys.exit(__doc__)
    COMMANDS[name][0](*sys.argv[2:])
