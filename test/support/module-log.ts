// Loaded with `node --import` (through NODE_OPTIONS) into a process under test: appends the URL of
// every module the process resolves to the file named by RAFTLET_TEST_MODULE_LOG, one a line, as
// it happens (so the log is complete up to any moment, whatever way the process ends), and when the
// process exits writes Node's own list of the internal modules it loaded (process.moduleLoadList)
// to the same name + `.internal`. Tests read them to see what a mode loads.
import { appendFileSync, writeFileSync } from 'node:fs';
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
  // Not in @types/node: Node's own record of the internal modules and bindings it loaded.
  const { moduleLoadList } = process as NodeJS.Process & { readonly moduleLoadList: readonly string[] };
  process.on('exit', () => writeFileSync(`${logFile}.internal`, moduleLoadList.join('\n')));
}
