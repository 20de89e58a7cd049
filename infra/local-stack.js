#!/usr/bin/env node
// The local S3 + DynamoDB stack for specs and the demo: s3rver and dynalite
// in one Node process, on free loopback ports. Started and stopped by
// infra/local-stack.sh; see that file for the interface.
//
//   node infra/local-stack.js --dir DIR [--notify-cmd CMD]
//
// Writes DIR/stack.ready ({"s3": port, "dynamodb": port, "pid": pid}) once the
// buckets and the table exist. With a notify command, every object created in
// the upload bucket runs `sh -c CMD` with the S3 event on stdin, one command
// at a time per key in arrival order, output appended to DIR/notify.log.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const crypto = require('crypto');
const { spawn } = require('child_process');

const root = path.resolve(__dirname, '..');
const S3rver = require(path.join(root, 'node_modules/s3rver'));
const dynalite = require(path.join(root, 'node_modules/dynalite'));

function parseArgs(argv) {
  const out = { dir: null, notifyCmd: process.env.IMGPIPE_STACK_NOTIFY_CMD || '' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir') out.dir = argv[++i];
    else if (argv[i] === '--notify-cmd') out.notifyCmd = argv[++i];
    else throw new Error('unknown argument ' + argv[i]);
  }
  if (!out.dir) throw new Error('--dir DIR is required');
  return out;
}

const args = parseArgs(process.argv.slice(2));
const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
const uploadBucket = process.env.UPLOAD_BUCKET || 'imgpipe-uploads';
const processedBucket = process.env.PROCESSED_BUCKET || 'imgpipe-processed';
const tableName = process.env.TABLE_NAME || 'imgpipe-images';
const notifyLog = path.join(args.dir, 'notify.log');
const statusIndex = 'status-index';
// The upload bucket's CORS rules, the same as the template's UploadBucket:
// pages on another origin (the upload page under imgpipe serve) may PUT and
// POST to it. IMGPIPE_STACK_CORS_ORIGIN narrows the origin (default any).
const corsOrigin = process.env.IMGPIPE_STACK_CORS_ORIGIN || '*';

function xmlText(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const uploadCors =
  '<CORSConfiguration><CORSRule>' +
  '<AllowedOrigin>' + xmlText(corsOrigin) + '</AllowedOrigin>' +
  '<AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>' +
  '<AllowedHeader>*</AllowedHeader><MaxAgeSeconds>3000</MaxAgeSeconds>' +
  '</CORSRule></CORSConfiguration>';

function log(msg) {
  fs.appendFileSync(path.join(args.dir, 'stack.log'), new Date().toISOString() + ' ' + msg + '\n');
}

// ---- S3 event notifications ---------------------------------------------

// S3 writes object keys into events form-encoded: bytes outside
// A-Z a-z 0-9 - _ . * / become %XX, spaces become '+'.
function eventKey(key) {
  let out = '';
  for (const b of Buffer.from(key, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.*/]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// Sequencers only grow: time-based, bumped when two events share a tick.
let lastSequencer = 0n;
function nextSequencer() {
  let s = BigInt(Date.now()) * 1000000n;
  if (s <= lastSequencer) s = lastSequencer + 1n;
  lastSequencer = s;
  return s.toString(16).toUpperCase().padStart(18, '0');
}

function hex(n) {
  return crypto.randomBytes(n).toString('hex').toUpperCase();
}

function s3Event(name, bucket, key, size, etag, sourceIp) {
  const object = { key: eventKey(key), size, sequencer: nextSequencer() };
  if (etag) object.eTag = etag;
  return {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: region,
        eventTime: new Date().toISOString(),
        eventName: name,
        userIdentity: { principalId: 'AWS:' + hex(10) },
        requestParameters: { sourceIPAddress: sourceIp || '127.0.0.1' },
        responseElements: { 'x-amz-request-id': hex(8), 'x-amz-id-2': crypto.randomBytes(32).toString('base64') },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'imgpipe-local-stack',
          bucket: { name: bucket, ownerIdentity: { principalId: hex(7) }, arn: 'arn:aws:s3:::' + bucket },
          object,
        },
      },
    ],
  };
}

// One chain of commands per key: events of a key run in arrival order, one
// at a time; different keys do not wait for each other.
const chains = new Map();
const MAX_PENDING = 10000;
let pending = 0;

function runNotify(event) {
  return new Promise(resolve => {
    const child = spawn('/bin/sh', ['-c', args.notifyCmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = fs.openSync(notifyLog, 'a');
    child.stdout.on('data', d => fs.writeSync(out, d));
    child.stderr.on('data', d => fs.writeSync(out, d));
    child.on('error', err => {
      fs.writeSync(out, 'notify command failed to start: ' + err.message + '\n');
    });
    child.on('close', code => {
      if (code !== 0) fs.writeSync(out, 'notify command exited with ' + code + '\n');
      fs.closeSync(out);
      resolve();
    });
    child.stdin.on('error', () => {}); // the command may not read its input
    child.stdin.end(JSON.stringify(event) + '\n');
  });
}

function notify(key, event) {
  if (pending >= MAX_PENDING) {
    log('notify queue full: dropped an event for ' + key);
    return;
  }
  pending++;
  const prev = chains.get(key) || Promise.resolve();
  const next = prev.then(() => runNotify(event)).finally(() => {
    pending--;
    if (chains.get(key) === next) chains.delete(key);
  });
  chains.set(key, next);
}

function onS3Event(e) {
  const r = e && e.Records && e.Records[0];
  if (!r || !r.eventName.startsWith('ObjectCreated:')) return;
  const bucket = r.s3.bucket.name;
  if (bucket !== uploadBucket || !args.notifyCmd) return;
  const key = r.s3.object.key; // s3rver hands over the raw key
  const ev = s3Event(r.eventName, bucket, key, r.s3.object.size, r.s3.object.eTag,
    r.requestParameters && r.requestParameters.sourceIPAddress);
  notify(key, ev);
}

// ---- s3rver request fixes ----------------------------------------------------

// s3rver routes /:bucket/:key* by path segments, so keys with an empty
// segment ("a//b", "/a", "dir/") do not reach the object handlers; S3 itself
// takes them. Sending the key as one segment ('/' as %2F, which the router
// decodes) keeps the key intact. s3rver also reads x-amz-copy-source with
// decodeURI, which leaves %2B, %3D, %2C… encoded; handing it a copy source
// that only needs decodeURI fixes keys with those characters.
function fixS3Request(req) {
  const q = req.url.indexOf('?');
  const p = q < 0 ? req.url : req.url.slice(0, q);
  const m = /^\/([^/]+)\/(.*)$/.exec(p);
  if (m && m[2] && (m[2].includes('//') || m[2].startsWith('/') || m[2].endsWith('/'))) {
    req.url = '/' + m[1] + '/' + m[2].replace(/\//g, '%2F') + (q < 0 ? '' : req.url.slice(q));
  }
  const src = req.headers['x-amz-copy-source'];
  if (src) {
    try {
      req.headers['x-amz-copy-source'] = encodeURI(decodeURIComponent(src));
    } catch (e) {
      // malformed encoding: leave it for s3rver to refuse
    }
  }
  return req;
}

// ---- DynamoDB ----------------------------------------------------------------

function dynamoCall(port, target, body) {
  const data = JSON.stringify(body);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'DynamoDB_20120810.' + target,
        'X-Amz-Date': stamp,
        Authorization: 'AWS4-HMAC-SHA256 Credential=S3RVER/' + stamp.slice(0, 8) + '/' + region +
          '/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=' + '0'.repeat(64),
      },
      timeout: 5000,
    }, res => {
      let text = '';
      res.on('data', d => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : {} }));
    });
    req.on('timeout', () => req.destroy(new Error('DynamoDB call timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

// The table as infra/template.yaml makes it: key imageId, and the status
// index (status, uploadTimestamp) that `failed` and `retry` query.
async function createTable(port) {
  const r = await dynamoCall(port, 'CreateTable', {
    TableName: tableName,
    AttributeDefinitions: [
      { AttributeName: 'imageId', AttributeType: 'S' },
      { AttributeName: 'status', AttributeType: 'S' },
      { AttributeName: 'uploadTimestamp', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: 'imageId', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: statusIndex,
        KeySchema: [
          { AttributeName: 'status', KeyType: 'HASH' },
          { AttributeName: 'uploadTimestamp', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
    BillingMode: 'PAY_PER_REQUEST',
  });
  if (r.status !== 200 && !/ResourceInUseException/.test(r.body.__type || '')) {
    throw new Error('CreateTable failed: ' + JSON.stringify(r.body));
  }
  for (let i = 0; i < 100; i++) {
    const d = await dynamoCall(port, 'DescribeTable', { TableName: tableName });
    const t = d.status === 200 && d.body.Table;
    if (t && t.TableStatus === 'ACTIVE' &&
        (t.GlobalSecondaryIndexes || []).every(i => i.IndexStatus === 'ACTIVE')) return;
    await new Promise(res => setTimeout(res, 50));
  }
  throw new Error('table ' + tableName + ' did not become ACTIVE');
}

// ---- main ------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(path.join(args.dir, 's3'), { recursive: true });
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: path.join(args.dir, 's3'),
    configureBuckets: [{ name: uploadBucket, configs: [uploadCors] }, { name: processedBucket }],
  });
  s3.on('event', onS3Event);
  await s3.configureBuckets();
  const handle = s3.callback();
  const s3server = http.createServer((req, res) => handle(fixS3Request(req), res));
  await new Promise((resolve, reject) => {
    s3server.once('error', reject);
    s3server.listen(0, '127.0.0.1', resolve);
  });
  const s3addr = s3server.address();

  const ddb = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((resolve, reject) => {
    ddb.once('error', reject);
    ddb.listen(0, '127.0.0.1', resolve);
  });
  const ddbPort = ddb.address().port;
  await createTable(ddbPort);

  const stop = () => {
    log('stopping');
    ddb.close();
    s3server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const ready = { s3: s3addr.port, dynamodb: ddbPort, pid: process.pid };
  const tmp = path.join(args.dir, 'stack.ready.tmp');
  fs.writeFileSync(tmp, JSON.stringify(ready) + '\n');
  fs.renameSync(tmp, path.join(args.dir, 'stack.ready'));
  log('ready ' + JSON.stringify(ready));
}

// An emulator bug met by one request (s3rver lets some file system errors,
// such as a key segment longer than a file name may be, escape as stream
// errors) must not take the whole stack down for the rest of a test run.
process.on('uncaughtException', err => {
  try { log('uncaught: ' + (err.stack || err)); } catch (e) { /* the directory may be gone */ }
});

main().catch(err => {
  try { log('failed: ' + (err.stack || err)); } catch (e) { /* the directory may be gone */ }
  process.stderr.write('local-stack: ' + (err.stack || err) + '\n');
  process.exit(1);
});
