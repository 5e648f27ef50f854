// The process exit codes of SPEC section 2, by name.
export const ExitCode = {
  /** A clean stop (SIGTERM, SIGINT, a command that did its job). */
  ok: 0,
  /** Anything unexpected: a broken internal invariant, a bug. */
  failure: 1,
  /** Bad configuration (a setting, a busy port), reported before anything is started. */
  badConfig: 2,
  /** The data directory is unusable or corrupt (never repaired by dropping committed entries). */
  badData: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
