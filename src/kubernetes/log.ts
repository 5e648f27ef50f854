// The logging surface the Kubernetes adapters need. pino's Logger satisfies it, and so does a
// test's recording stub, so the adapters never import pino themselves.

type LogFn = (obj: Record<string, unknown>, msg: string) => void;

export interface Logger {
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
}

/** For callers that do not care (tests of pure parts, short scripts). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
