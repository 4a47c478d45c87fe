// PostGraphile's configuration for the benchmark (the CLI reads this file from its directory).
// Scenario 3 sends 1,000 createInteraction mutations in one document (~350 kB): above
// grafserv's default 100 kB request limit.
export default {
  grafserv: { maxRequestLength: 2_000_000 },
};
