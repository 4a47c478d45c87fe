// A webhook receiver in Node that verifies every delivery with the official npm
// `standardwebhooks` package (docs/webhooks.md), for tests/webhooks/test_node_receiver.py.
// Usage: node node_receiver.cjs PORT SECRET — prints one JSON line per request:
// {"id": webhook-id, "verified": true|false, "data": ...} and answers 204 (or 400).
const http = require("http");
const { Webhook } = require("standardwebhooks");

const [port, secret] = process.argv.slice(2);
const verifier = new Webhook(secret);

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let event = null;
      try {
        event = verifier.verify(body, req.headers);
      } catch (error) {
        event = null;
      }
      const line = { id: req.headers["webhook-id"], verified: event !== null, data: event && event.data };
      process.stdout.write(JSON.stringify(line) + "\n");
      res.writeHead(event !== null ? 204 : 400);
      res.end();
    });
  })
  .listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
