// A minimal Lambda Runtime API client for the Node.js peer (what the
// AWS-provided nodejs runtime does, minus logging, X-Ray and error details):
// import the handler module (_HANDLER = "module.function"), then GET /next,
// call, POST /response or /error, forever, over one keep-alive connection.
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const PREFIX = "/2018-06-01/runtime";

function request(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: urlPath, agent,
      headers: body ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } : {} },
    (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const root = process.env.LAMBDA_TASK_ROOT ?? path.dirname(new URL(import.meta.url).pathname);
const [moduleName, functionName] = process.env._HANDLER.split(".");
let handler;
try {
  handler = (await import(pathToFileURL(path.join(root, moduleName + ".mjs")).href))[functionName];
} catch (e) {
  await request("POST", `${PREFIX}/init/error`, JSON.stringify({ errorMessage: e.message, errorType: e.name }));
  throw e;
}

for (;;) {
  const next = await request("GET", `${PREFIX}/invocation/next`);
  const id = next.headers["lambda-runtime-aws-request-id"];
  const deadline = Number(next.headers["lambda-runtime-deadline-ms"] ?? 0);
  const context = { awsRequestId: id, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
  let out, where;
  try {
    out = JSON.stringify(await handler(JSON.parse(next.body), context));
    where = "response";
  } catch (e) {
    out = JSON.stringify({ errorMessage: e.message, errorType: e.name, stackTrace: (e.stack ?? "").split("\n") });
    where = "error";
  }
  await request("POST", `${PREFIX}/invocation/${id}/${where}`, out);
}
