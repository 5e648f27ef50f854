// Loaded with `node --import` (through NODE_OPTIONS) into a process under test: the first time the
// process resolves the module named by RAFTLET_TEST_HOLD_MODULE (a path inside src/ or dist/
// without its extension, e.g. `run/stop-signals`), it creates the file RAFTLET_TEST_HOLD_MARKER and
// then holds that thread for RAFTLET_TEST_HOLD_MS, as a long synchronous step of the program would.
// A step of a start that is too short to aim at from outside (a signal while the bin runs, before
// it re-executes itself: about a hundred milliseconds, its start moving with the machine's load)
// becomes one a test can wait for and act in. A signal that arrives meanwhile is handled by the
// program once the thread runs again, as after any synchronous step.
//
// The variables are removed from the environment as this loads, so a process the program starts or
// re-executes (with the same NODE_OPTIONS) holds nothing.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const name = process.env.RAFTLET_TEST_HOLD_MODULE;
const marker = process.env.RAFTLET_TEST_HOLD_MARKER;
const holdMs = Number(process.env.RAFTLET_TEST_HOLD_MS ?? '0');
delete process.env.RAFTLET_TEST_HOLD_MODULE;
delete process.env.RAFTLET_TEST_HOLD_MARKER;
delete process.env.RAFTLET_TEST_HOLD_MS;

if (name !== undefined && name !== '' && marker !== undefined && marker !== '') {
  const targets = [`/src/${name}.ts`, `/dist/${name}.js`];
  let held = false;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!held && targets.some((t) => resolved.url.endsWith(t))) {
        held = true;
        writeFileSync(marker, `${process.pid}\n`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, holdMs);
      }
      return resolved;
    },
  });
}
