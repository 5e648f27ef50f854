// Command-line numbers for the simulators' CLIs.

/** The value of --name as a non-negative integer; exits 2 naming the flag otherwise. */
export function intArg(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer (got ${text})`);
    process.exit(2);
  }
  return n;
}
