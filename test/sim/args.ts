// Command-line parsing for the simulators' CLIs.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** parseArgs over process.argv: --help prints `usage` and exits 0; an unknown or malformed flag
 * prints what is wrong and the usage, and exits 2. */
export function parseCli<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  if (process.argv.slice(2).some((arg) => arg === '--help' || arg === '-h')) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
    process.exit(2);
  }
}

/** The value of --name as a non-negative integer; exits 2 naming the flag otherwise. */
export function intArg(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer (got ${text})`);
    process.exit(2);
  }
  return n;
}
