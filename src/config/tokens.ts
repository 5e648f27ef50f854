// The rules for a cluster token list, shared by settings parsing and the token file's re-reads
// (src/transport/tokens.ts): one token per line in a file, comma-separated in a variable.

export const MIN_TOKEN_LENGTH = 16;

/** Splits and checks a token list: one per line in a file, or comma-separated in a variable.
 * Blank items are ignored. Throws an Error whose message never contains a token. */
export function parseTokenList(text: string, separator: 'line' | 'comma', what: string): string[] {
  const items = (separator === 'line' ? text.split(/\r?\n/) : text.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new Error(`${what} holds no token`);
  items.forEach((token, i) => {
    const which = items.length === 1 ? what : `${what} (token ${i + 1} of ${items.length})`;
    if (token.length < MIN_TOKEN_LENGTH) {
      throw new Error(`${which} must hold at least ${MIN_TOKEN_LENGTH} characters (got ${token.length}); e.g. openssl rand -hex 32`);
    }
    if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`${which} must hold printable ASCII without spaces (it goes into an HTTP header)`);
  });
  return [...new Set(items)];
}
