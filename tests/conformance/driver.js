// Conformance driver for the Node SDK (tencentcloud-sdk-nodejs): a JSON-lines loop.
//
//   node driver.js <node_modules dir> <endpoint host:port> <signMethod> <reqMethod>
//
// Each stdin line is {"version", "action", "params", "secretId", "secretKey"}; each stdout line
// is {"ok": <Response>} or {"error": {"code", "message", "requestId"}}.
// The action is called through the SDK's own typed method (client.CreateGroup(...)), so an
// action the SDK does not have for that version is reported, not sent.
"use strict";

const path = require("path");
const readline = require("readline");

const [modulesDir, endpoint, signMethod, reqMethod] = process.argv.slice(2);
const tencentcloud = require(path.join(modulesDir, "tencentcloud-sdk-nodejs"));

const clients = new Map();

function client(version, secretId, secretKey) {
  const key = [version, secretId, secretKey].join("\n");
  if (!clients.has(key)) {
    const mod = tencentcloud.iai["v" + version.replace(/-/g, "")];
    if (!mod) throw new Error(`the SDK has no iai version ${version}`);
    clients.set(key, new mod.Client({
      credential: { secretId, secretKey },
      region: "ap-guangzhou",
      profile: {
        signMethod,
        httpProfile: { endpoint, protocol: "http://", reqMethod, reqTimeout: 120 },
      },
    }));
  }
  return clients.get(key);
}

async function handle(line) {
  const req = JSON.parse(line);
  const c = client(req.version, req.secretId, req.secretKey);
  if (typeof c[req.action] !== "function") {
    return { error: { code: "ClientMissingAction", message: `no method ${req.action}` } };
  }
  try {
    return { ok: await c[req.action](req.params) };
  } catch (err) {
    return { error: { code: err.code || "ClientError", message: String(err.message),
                      requestId: err.requestId || "" } };
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  // One call at a time, answered in order.
  queue = queue.then(() => handle(line)).then(
    (res) => process.stdout.write(JSON.stringify(res) + "\n"),
    (err) => process.stdout.write(JSON.stringify(
      { error: { code: "DriverError", message: String(err && err.stack || err) } }) + "\n"));
});
