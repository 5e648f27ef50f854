// Loaded with `node --import` (through NODE_OPTIONS) into a process under test: appends the URL of
// every module the process resolves to the file named by RAFTLET_TEST_MODULE_LOG, one a line, as
// it happens (so the log is complete up to any moment, whatever way the process ends). Tests read
// it to see which libraries a mode loads.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const logFile = process.env.RAFTLET_TEST_MODULE_LOG;
if (logFile !== undefined && logFile !== '') {
  const seen = new Set<string>();
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!seen.has(resolved.url)) {
        seen.add(resolved.url);
        appendFileSync(logFile, `${resolved.url}\n`);
      }
      return resolved;
    },
  });
}
