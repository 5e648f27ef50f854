// The floor under a raftlet member's idle memory: a process that loads the libraries the design
// chose for a member (express for the API, pino for logs, prom-client with its default metrics),
// serves one express route over node:http, runs one full collection as a member does at the end of
// its start-up, and then does nothing. bench/lib/floor.ts starts it with the V8 flags and malloc
// setting a member gets (src/cli/v8-sizing.ts) and reads its VmRSS beside the members' idle figure:
// what a member holds above it is raftlet's own. Plain JavaScript: type stripping would add memory
// of its own.
import { createRequire } from 'node:module';
import express from 'express';
import pino from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';

// As src/util/http.ts loads it (an ESM import of node:http loads Node's bundled undici).
const http = createRequire(import.meta.url)('node:http');
const logger = pino();
const registry = new Registry();
collectDefaultMetrics({ register: registry });
const app = express();
app.get('/metrics', async (_req, res) => {
  res.type(registry.contentType).send(await registry.metrics());
});
const server = http.createServer(app);
server.listen(0, '127.0.0.1', () => {
  globalThis.gc?.();
  logger.info({ port: server.address().port }, 'listening');
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close());
