"""The process step written the usual Python way: boto3 and Pillow.

The same work as imgpipe's pipelines/process.lua for an S3 ObjectCreated
event: claim the image record (conditional UpdateItem, so duplicate or late
events change nothing), check the size, GET the object, check format and
pixel count from the header, fit into 800x800 (Image.thumbnail: JPEG draft
= shrink-on-load, then bicubic; EXIF auto-rotation), JPEG quality 80 with
no metadata, PUT it into the processed bucket with Content-Type,
Cache-Control and metadata, then record PROCESSED (conditional on the
claim). Clients are made once, at import, as AWS recommends.

Endpoints: this botocore (Debian 12's 1.29) predates the
AWS_ENDPOINT_URL_S3 / _DYNAMODB variables, so they are passed explicitly.
"""
import io
import os
import time
import urllib.parse
import uuid

import boto3
from botocore.config import Config
from PIL import Image, ImageOps

UPLOAD_BUCKET = os.environ["UPLOAD_BUCKET"]
PROCESSED_BUCKET = os.environ["PROCESSED_BUCKET"]
TABLE = os.environ["TABLE_NAME"]
UPLOAD_PREFIX = os.environ.get("UPLOAD_PREFIX", "uploads/")
PROCESSED_PREFIX = os.environ.get("PROCESSED_PREFIX", "processed/")
MAX_DIMENSION = int(os.environ.get("MAX_DIMENSION", "800"))
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_BYTES", str(25 * 1024 * 1024)))
MAX_PIXELS = int(os.environ.get("MAX_PIXELS", "40000000"))
QUALITY = int(os.environ.get("OUTPUT_QUALITY", "80"))
CACHE_CONTROL = os.environ.get("OUTPUT_CACHE_CONTROL", "public, max-age=31536000, immutable")
CLAIM_TTL_S = 900
ALLOWED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"),
                  config=Config(s3={"addressing_style": "path"}))
ddb = boto3.client("dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))


class Permanent(Exception):
    pass


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def claim(image_id, key, sequencer):
    now = int(time.time())
    token = str(uuid.uuid4())
    values = {":token": {"S": token}, ":now": {"N": str(now)}, ":stale": {"N": str(now - CLAIM_TTL_S)},
              ":key": {"S": key}, ":pending": {"S": "PENDING"}, ":iso": {"S": iso_now()},
              ":seq": {"S": sequencer}}
    try:
        ddb.update_item(
            TableName=TABLE, Key={"imageId": {"S": image_id}},
            UpdateExpression="SET claimToken = :token, claimedAt = :now, originalKey = if_not_exists(originalKey, :key), "
                             "uploadTimestamp = if_not_exists(uploadTimestamp, :iso), "
                             "#status = if_not_exists(#status, :pending), claimSequencer = :seq",
            ConditionExpression="(attribute_not_exists(claimToken) OR claimedAt < :stale) "
                                "AND (attribute_not_exists(sequencer) OR sequencer < :seq)",
            ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values)
    except ddb.exceptions.ConditionalCheckFailedException:
        return None
    return token


def settle(image_id, token, sequencer, fields):
    names, values, sets = {"#status": "status"}, {":token": {"S": token}, ":seq": {"S": sequencer}}, []
    for name, value in fields.items():
        attr = "#status" if name == "status" else name
        values[":" + name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        sets.append("%s = :%s" % (attr, name))
    sets.append("sequencer = :seq")
    ddb.update_item(
        TableName=TABLE, Key={"imageId": {"S": image_id}},
        UpdateExpression="SET %s REMOVE claimToken, claimedAt, claimSequencer" % ", ".join(sets),
        ConditionExpression="claimToken = :token",
        ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def render(body):
    with Image.open(io.BytesIO(body)) as im:
        if im.format not in ALLOWED:
            raise Permanent("UnsupportedFormat: %s" % im.format)
        width, height = im.size
        if width * height * getattr(im, "n_frames", 1) > MAX_PIXELS:
            raise Permanent("TooManyPixels: %dx%d" % (width, height))
        im.thumbnail((MAX_DIMENSION, MAX_DIMENSION))
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        out = io.BytesIO()
        im.save(out, "JPEG", quality=QUALITY)
        return out.getvalue(), width, height, im.width, im.height


def process_record(rec):
    bucket = rec["s3"]["bucket"]["name"]
    key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
    if bucket != UPLOAD_BUCKET or not key.startswith(UPLOAD_PREFIX):
        return {"status": "SKIPPED", "key": key}
    image_id = key[len(UPLOAD_PREFIX):].rsplit(".", 1)[0].lower()
    sequencer = rec["s3"]["object"].get("sequencer", "0").upper().rjust(32, "0")
    token = claim(image_id, key, sequencer)
    if token is None:
        return {"imageId": image_id, "status": "SKIPPED", "reason": "duplicate or older event"}
    try:
        size = rec["s3"]["object"].get("size")
        if size is None:
            size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size == 0 or size > MAX_UPLOAD_BYTES:
            raise Permanent("TooLarge: %d bytes" % size)
        obj = s3.get_object(Bucket=bucket, Key=key)
        body = obj["Body"].read()
        out, width, height, out_w, out_h = render(body)
        out_key = "%s%s.jpg" % (PROCESSED_PREFIX, image_id)
        s3.put_object(Bucket=PROCESSED_BUCKET, Key=out_key, Body=out, ContentType="image/jpeg",
                      CacheControl=CACHE_CONTROL,
                      Metadata={"image-id": image_id, "original-bucket": bucket,
                                "original-key": urllib.parse.quote(key, safe="/-._~")})
    except (Permanent, Image.DecompressionBombError, OSError) as e:
        settle(image_id, token, sequencer, {"status": "FAILED", "reason": str(e), "failedAt": iso_now()})
        return {"imageId": image_id, "status": "FAILED", "reason": str(e)}
    settle(image_id, token, sequencer, {
        "status": "PROCESSED", "processedAt": iso_now(), "processedKey": out_key, "width": width,
        "height": height, "outWidth": out_w, "outHeight": out_h, "bytes": len(body), "outBytes": len(out),
        "outContentType": "image/jpeg", "etag": obj.get("ETag", "")})
    return {"imageId": image_id, "status": "PROCESSED", "processedKey": out_key, "width": out_w, "height": out_h}


def lambda_handler(event, context):
    return {"records": [process_record(r) for r in event.get("Records", [])]}
