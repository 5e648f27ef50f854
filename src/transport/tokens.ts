// The cluster token set (issue 11): the first token is what this member sends, every token is
// accepted. Rotation goes "A" -> "A\nB" -> "B\nA" -> "B" across the members, one step at a time,
// with no restart when the tokens come from a file: the file is watched and re-read.
import { readFileSync } from 'node:fs';
import { parseTokenList } from '../config/tokens.ts';
import { FileWatch } from './file-watch.ts';

export interface TokenSource {
  /** The current set, never empty: [0] is sent, all are accepted. The same array is returned
   * until the set changes, so callers may cache what they derive from it. */
  current(): readonly string[];
}

export function staticTokens(tokens: readonly string[]): TokenSource {
  const frozen = Object.freeze([...tokens]);
  return { current: () => frozen };
}

export interface FileTokensOptions {
  /** A rewrite that cannot be read or is invalid: the last good set stays. Never gets a token. */
  readonly onWarning?: (message: string) => void;
  /** The set changed (the count only: tokens are never handed to loggers). */
  readonly onChange?: (count: number) => void;
  /** How often the file is stat'ed besides the directory watch. Default 2000 ms. */
  readonly pollMs?: number;
}

/** Tokens from RAFTLET_CLUSTER_TOKEN_FILE, re-read when the file changes (Kubernetes swaps a
 * Secret volume's files through a symlink: the directory is watched, and the file stat'ed). */
export class FileTokens implements TokenSource {
  readonly file: string;
  private tokens: readonly string[];
  private readonly watch: FileWatch;
  private readonly options: FileTokensOptions;

  /** Throws if the file cannot be read or holds no valid token (a start-up error). */
  constructor(file: string, options: FileTokensOptions = {}) {
    this.file = file;
    this.options = options;
    this.tokens = Object.freeze(parseTokenList(readFileSync(file, 'utf8'), 'line', `the token file ${file}`));
    this.watch = new FileWatch([file], () => this.reload(), options.pollMs ?? 2000);
  }

  current(): readonly string[] {
    return this.tokens;
  }

  /** Re-reads the file now (also called by the watch). */
  reload(): void {
    let next: string[];
    try {
      next = parseTokenList(readFileSync(this.file, 'utf8'), 'line', `the token file ${this.file}`);
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
      this.options.onWarning?.(`cannot use the rewritten token file ${this.file} (${why}); keeping the ${this.tokens.length} token(s) read before`);
      return;
    }
    if (next.length === this.tokens.length && next.every((t, i) => t === this.tokens[i])) return;
    this.tokens = Object.freeze(next);
    this.options.onChange?.(next.length);
  }

  close(): void {
    this.watch.close();
  }
}
