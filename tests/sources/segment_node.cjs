// Sends identify, track and page with Segment's Node SDK (@segment/analytics-node) to a hub,
// then prints one JSON line: the HTTP statuses the SDK saw and the errors it emitted.
// Run from the repository root (beside node_modules): node tests/sources/segment_node.cjs
// Environment: HUB_URL, WRITE_KEY, PREFIX (message ids and user ids are derived from it).
const { Analytics } = require("@segment/analytics-node");

async function main() {
  const prefix = process.env.PREFIX;
  const analytics = new Analytics({
    writeKey: process.env.WRITE_KEY,
    host: process.env.HUB_URL,
    maxEventsInBatch: 3,
    flushInterval: 60000,
    maxRetries: 0,
  });
  const statuses = [];
  const errors = [];
  analytics.on("http_response", (response) => statuses.push(response.status));
  analytics.on("error", (error) => errors.push(String(error.reason || error.message || error)));
  const timestamp = new Date("2026-03-02T09:00:00Z");
  analytics.identify({
    userId: `${prefix}-user`,
    traits: { email: `${prefix}@example.com`, firstName: "Bo", lastName: "Node" },
    timestamp,
    messageId: `${prefix}-identify`,
  });
  analytics.track({
    userId: `${prefix}-user`,
    event: "Product Added",
    properties: { sku: "linen-1", price: 89 },
    timestamp: new Date("2026-03-02T09:01:00Z"),
    messageId: `${prefix}-track`,
  });
  analytics.page({
    userId: `${prefix}-user`,
    name: "Cart",
    properties: { url: "https://wren.example/cart" },
    timestamp: new Date("2026-03-02T09:02:00Z"),
    messageId: `${prefix}-page`,
  });
  await analytics.closeAndFlush({ timeout: 20000 });
  console.log(JSON.stringify({ statuses, errors }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
