// The graphql-http server audits (the GraphQL-over-HTTP spec's conformance suite) against a
// running hub: node graphql_http_audit.mjs URL KEY. Prints one JSON array of
// {id, name, status, reason} and exits 0; the Python test decides what must pass.
import { serverAudits } from 'graphql-http';

const [url, key] = process.argv.slice(2);
// Every request carries the key, and the header the hub's CSRF rule asks of GET queries.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${key}`);
  headers.set('x-hub-request', '1');
  return fetch(input, { ...init, headers });
};
const results = [];
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === 'ok' ? null : result.reason,
  });
}
process.stdout.write(JSON.stringify(results));
