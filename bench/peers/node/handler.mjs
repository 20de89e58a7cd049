// The process step written the usual Node.js way: AWS SDK v3 and sharp.
//
// The same work as imgpipe's pipelines/process.lua for an S3 ObjectCreated
// event: claim the image record (conditional UpdateItem, so duplicate or
// late events change nothing), check the size, GET the object, check format
// and pixel count from the header (sharp().metadata()), fit into 800x800
// (sharp: EXIF auto-rotation, shrink-on-load, resize fit "inside" without
// enlargement, sRGB), JPEG quality 80 with no metadata, PUT it into the
// processed bucket with Content-Type, Cache-Control and metadata, then
// record PROCESSED (conditional on the claim). Clients are made once, at
// module load, as AWS recommends; endpoints come from AWS_ENDPOINT_URL_S3 /
// AWS_ENDPOINT_URL_DYNAMODB, which SDK v3 reads itself.
import { randomUUID } from "node:crypto";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import sharp from "sharp";

const env = process.env;
const UPLOAD_BUCKET = env.UPLOAD_BUCKET;
const PROCESSED_BUCKET = env.PROCESSED_BUCKET;
const TABLE = env.TABLE_NAME;
const UPLOAD_PREFIX = env.UPLOAD_PREFIX ?? "uploads/";
const PROCESSED_PREFIX = env.PROCESSED_PREFIX ?? "processed/";
const MAX_DIMENSION = Number(env.MAX_DIMENSION ?? 800);
const MAX_UPLOAD_BYTES = Number(env.MAX_UPLOAD_BYTES ?? 25 * 1024 * 1024);
const MAX_PIXELS = Number(env.MAX_PIXELS ?? 40000000);
const QUALITY = Number(env.OUTPUT_QUALITY ?? 80);
const CACHE_CONTROL = env.OUTPUT_CACHE_CONTROL ?? "public, max-age=31536000, immutable";
const CLAIM_TTL_S = 900;
const ALLOWED = new Set(["jpeg", "png", "webp", "gif"]);

const s3 = new S3Client({ forcePathStyle: true });
const ddb = new DynamoDBClient({});

class Permanent extends Error {}

const isoNow = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
const attr = (v) => (typeof v === "number" ? { N: String(v) } : { S: v });

async function claim(imageId, key, sequencer) {
  const now = Math.floor(Date.now() / 1000);
  const token = randomUUID();
  try {
    await ddb.send(new UpdateItemCommand({
      TableName: TABLE,
      Key: { imageId: { S: imageId } },
      UpdateExpression: "SET claimToken = :token, claimedAt = :now, originalKey = if_not_exists(originalKey, :key), " +
        "uploadTimestamp = if_not_exists(uploadTimestamp, :iso), #status = if_not_exists(#status, :pending), " +
        "claimSequencer = :seq",
      ConditionExpression: "(attribute_not_exists(claimToken) OR claimedAt < :stale) " +
        "AND (attribute_not_exists(sequencer) OR sequencer < :seq)",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: {
        ":token": attr(token), ":now": attr(now), ":stale": attr(now - CLAIM_TTL_S), ":key": attr(key),
        ":pending": attr("PENDING"), ":iso": attr(isoNow()), ":seq": attr(sequencer),
      },
    }));
  } catch (e) {
    if (e instanceof ConditionalCheckFailedException) return null;
    throw e;
  }
  return token;
}

async function settle(imageId, token, sequencer, fields) {
  const values = { ":token": attr(token), ":seq": attr(sequencer) };
  const sets = [];
  for (const [name, value] of Object.entries(fields)) {
    values[":" + name] = attr(value);
    sets.push(`${name === "status" ? "#status" : name} = :${name}`);
  }
  sets.push("sequencer = :seq");
  await ddb.send(new UpdateItemCommand({
    TableName: TABLE,
    Key: { imageId: { S: imageId } },
    UpdateExpression: `SET ${sets.join(", ")} REMOVE claimToken, claimedAt, claimSequencer`,
    ConditionExpression: "claimToken = :token",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: values,
  }));
}

async function render(body) {
  const meta = await sharp(body).metadata();
  if (!ALLOWED.has(meta.format)) throw new Permanent(`UnsupportedFormat: ${meta.format}`);
  if (meta.width * meta.height * (meta.pages ?? 1) > MAX_PIXELS) {
    throw new Permanent(`TooManyPixels: ${meta.width}x${meta.height}`);
  }
  const { data, info } = await sharp(body, { limitInputPixels: MAX_PIXELS })
    .rotate()
    .resize(MAX_DIMENSION, MAX_DIMENSION, { fit: "inside", withoutEnlargement: true })
    .jpeg({ quality: QUALITY })
    .toBuffer({ resolveWithObject: true });
  return { data, width: meta.width, height: meta.height, outWidth: info.width, outHeight: info.height };
}

async function processRecord(rec) {
  const bucket = rec.s3.bucket.name;
  const key = decodeURIComponent(rec.s3.object.key.replace(/\+/g, " "));
  if (bucket !== UPLOAD_BUCKET || !key.startsWith(UPLOAD_PREFIX)) return { status: "SKIPPED", key };
  const imageId = key.slice(UPLOAD_PREFIX.length).replace(/\.[^.]*$/, "").toLowerCase();
  const sequencer = (rec.s3.object.sequencer ?? "0").toUpperCase().padStart(32, "0");
  const token = await claim(imageId, key, sequencer);
  if (token === null) return { imageId, status: "SKIPPED", reason: "duplicate or older event" };
  let body, made, etag;
  const outKey = `${PROCESSED_PREFIX}${imageId}.jpg`;
  try {
    let size = rec.s3.object.size;
    if (size === undefined) size = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
    if (size === 0 || size > MAX_UPLOAD_BYTES) throw new Permanent(`TooLarge: ${size} bytes`);
    const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    etag = obj.ETag ?? "";
    body = await obj.Body.transformToByteArray();
    made = await render(body);
    await s3.send(new PutObjectCommand({
      Bucket: PROCESSED_BUCKET, Key: outKey, Body: made.data, ContentType: "image/jpeg",
      CacheControl: CACHE_CONTROL,
      Metadata: { "image-id": imageId, "original-bucket": bucket, "original-key": encodeURI(key) },
    }));
  } catch (e) {
    if (!(e instanceof Permanent) && !/unsupported image format|Input buffer/i.test(e.message)) throw e;
    await settle(imageId, token, sequencer, { status: "FAILED", reason: e.message, failedAt: isoNow() });
    return { imageId, status: "FAILED", reason: e.message };
  }
  await settle(imageId, token, sequencer, {
    status: "PROCESSED", processedAt: isoNow(), processedKey: outKey, width: made.width, height: made.height,
    outWidth: made.outWidth, outHeight: made.outHeight, bytes: body.length, outBytes: made.data.length,
    outContentType: "image/jpeg", etag,
  });
  return { imageId, status: "PROCESSED", processedKey: outKey, width: made.outWidth, height: made.outHeight };
}

export const handler = async (event) => {
  const records = [];
  for (const rec of event.Records ?? []) records.push(await processRecord(rec));
  return { records };
};
