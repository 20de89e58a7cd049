// Presign benchmark, AWS SDK v3 peer: N presigned GET URLs in a loop.
//
//   node presign_sdk.mjs N
//
// The usual way: one S3Client (credentials and region from the
// environment), then getSignedUrl(client, new GetObjectCommand(...),
// {expiresIn}) from @aws-sdk/s3-request-presigner, awaited one at a time.
// Prints one JSON line.
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const BUCKET = "imgpipe-processed";
const KEY = "processed/0f8fad5b-d9cb-469f-a165-70867728950e.jpg";
const WARMUP = 500;
const n = Number(process.argv[2] ?? 5000);

const client = new S3Client({});
const sign = () => getSignedUrl(client, new GetObjectCommand({ Bucket: BUCKET, Key: KEY }), { expiresIn: 900 });
let url;
for (let i = 0; i < WARMUP; i++) url = await sign();
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) url = await sign();
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
if (!url.includes("X-Amz-Signature=")) throw new Error(url);
console.log(JSON.stringify({ tool: "sdk-v3", n, seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, url }));
