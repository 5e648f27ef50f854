// Options on the bench scripts' command lines: a bad number is a usage error that names the option,
// never a run with NaN in it.

export class UsageError extends Error {}

/** The number given for --name, or fallback when the option is absent; a UsageError unless it is a
 * finite number >= min. */
export function numberOption(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min} (got ${JSON.stringify(text)})`);
  return n;
}

/** --node-flags: Node flags separated by white space (none when the option is absent). */
export function flagsOption(text: string | undefined): string[] {
  return (text ?? '').split(/\s+/).filter((flag) => flag !== '');
}
