// PostGraphile as N processes sharing one port (Node's cluster module), for the benchmark's
// `--workers N` rows (bench/servers.py):  node cluster.mjs N <postgraphile CLI arguments…>
import cluster from "node:cluster";
import { createRequire } from "node:module";

const workers = Number(process.argv[2]);
if (!(workers >= 1)) {
  console.error("usage: node cluster.mjs WORKERS [postgraphile arguments...]");
  process.exit(2);
}
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  let stopping = false;
  cluster.on("exit", (worker, code) => {
    if (!stopping) {
      console.error(`postgraphile worker ${worker.process.pid} exited (${code})`);
      process.exit(1);
    }
  });
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
      stopping = true;
      for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGTERM");
      process.exit(0);
    });
  }
} else {
  // The CLI reads process.argv: drop the worker count so it sees its own arguments.
  process.argv.splice(2, 1);
  const require = createRequire(import.meta.url);
  require("./node_modules/postgraphile/dist/cli-run.js");
}
