// A Federation 2 gateway in front of hub (docs/deploy.md#federation-gateway).
//
// At start-up it asks every subgraph for `_service { sdl }`, composes the supergraph with
// @theguild/federation-composition and serves it with the GraphQL Hive Gateway runtime (both
// MIT). Per request it forwards the client's Authorization (the hub's API key), X-Request-Id and
// the W3C trace context to the subgraphs, so the hub applies the caller's role, scope and
// masking, and its log lines and traces join the gateway's request.
//
// Environment:
//   GATEWAY_SUBGRAPHS   name=url pairs, comma-separated (default hub=http://127.0.0.1:8000/graphql)
//   GATEWAY_SDL_AUTHORIZATION
//                       Authorization header for the start-up `_service { sdl }` calls: the hub
//                       answers it for ADMIN and ANALYST keys only ("Bearer <key>")
//   GATEWAY_HOST, GATEWAY_PORT   where to listen (default 127.0.0.1:4000)
//   GATEWAY_SUPERGRAPH_OUT       also write the composed supergraph SDL to this file
//
// Run: `node gateway.mjs` (after `npm ci --omit=dev` in this folder).

import { writeFileSync } from "node:fs";
import { createServer } from "node:http";

import { createGatewayRuntime } from "@graphql-hive/gateway-runtime";
import { composeServices } from "@theguild/federation-composition";
import { parse } from "graphql";

const FORWARDED_HEADERS = ["authorization", "x-request-id", "traceparent", "tracestate"];
const SDL_QUERY = "query SubgraphSdl { _service { sdl } }";

function subgraphs() {
  const spec = process.env.GATEWAY_SUBGRAPHS || "hub=http://127.0.0.1:8000/graphql";
  return spec.split(",").map((pair) => {
    const [name, url] = pair.split("=").map((part) => part.trim());
    if (!name || !url) throw new Error(`GATEWAY_SUBGRAPHS: expected name=url, got ${pair}`);
    return { name, url };
  });
}

async function fetchSdl({ name, url }) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (process.env.GATEWAY_SDL_AUTHORIZATION) {
    headers.authorization = process.env.GATEWAY_SDL_AUTHORIZATION;
  }
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ query: SDL_QUERY, operationName: "SubgraphSdl" }),
  });
  const body = await response.json().catch(() => null);
  const sdl = body?.data?._service?.sdl;
  if (!response.ok || typeof sdl !== "string") {
    const detail = body?.errors ? JSON.stringify(body.errors) : `HTTP ${response.status}`;
    throw new Error(`subgraph ${name} (${url}) did not give its SDL: ${detail}`);
  }
  return { name, url, typeDefs: parse(sdl) };
}

export async function composeSupergraph(services) {
  const definitions = await Promise.all(services.map(fetchSdl));
  const result = composeServices(definitions);
  if (result.errors && result.errors.length > 0) {
    const messages = result.errors.map((error) => `- ${error.message}`).join("\n");
    throw new Error(`supergraph composition failed:\n${messages}`);
  }
  return result.supergraphSdl;
}

async function main() {
  const services = subgraphs();
  const supergraph = await composeSupergraph(services);
  if (process.env.GATEWAY_SUPERGRAPH_OUT) {
    writeFileSync(process.env.GATEWAY_SUPERGRAPH_OUT, supergraph);
  }
  const gateway = createGatewayRuntime({
    supergraph,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: false,
    propagateHeaders: {
      fromClientToSubgraphs({ request }) {
        const headers = {};
        for (const name of FORWARDED_HEADERS) {
          const value = request.headers.get(name);
          if (value) headers[name] = value;
        }
        return headers;
      },
    },
  });
  const host = process.env.GATEWAY_HOST || "127.0.0.1";
  const port = Number(process.env.GATEWAY_PORT || 4000);
  const server = createServer(gateway);
  server.listen(port, host, () => {
    const names = services.map((service) => service.name).join(", ");
    console.log(`gateway ready on http://${host}:${port}/graphql (subgraphs: ${names})`);
  });
  const stop = () => {
    server.close(() => gateway.dispose().then(() => process.exit(0)));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
