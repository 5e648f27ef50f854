// A bounded FIFO of encoded messages for one peer. When full it drops the oldest: Raft tolerates
// loss, and the newest messages (latest term, latest commit index) are the useful ones.

export class SendQueue {
  // Slots before head are cleared so sent messages are not kept alive.
  private items: (Uint8Array | undefined)[] = [];
  private head = 0;
  private totalBytes = 0;
  private readonly maxMessages: number;
  private readonly maxBytes: number;

  constructor(maxMessages: number, maxBytes: number) {
    if (!(maxMessages >= 1) || !(maxBytes >= 1)) throw new RangeError(`a send queue needs room for at least one message (got ${maxMessages} messages, ${maxBytes} bytes)`);
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends one message; returns how many older messages were dropped to make room. A message
   * larger than maxBytes on its own still goes in, alone, so it is never silently undeliverable. */
  push(message: Uint8Array): number {
    let dropped = 0;
    while (this.length > 0 && (this.length + 1 > this.maxMessages || this.totalBytes + message.byteLength > this.maxBytes)) {
      this.shift();
      dropped++;
    }
    this.items.push(message);
    this.totalBytes += message.byteLength;
    return dropped;
  }

  /** Removes up to maxMessages from the front, stopping before maxBytes (but always at least one). */
  takeBatch(maxMessages: number, maxBytes: number): Uint8Array[] {
    const batch: Uint8Array[] = [];
    let bytes = 0;
    while (this.length > 0 && batch.length < maxMessages) {
      const next = this.items[this.head] as Uint8Array;
      if (batch.length > 0 && bytes + next.byteLength > maxBytes) break;
      batch.push(this.shift());
      bytes += next.byteLength;
    }
    return batch;
  }

  /** Empties the queue; returns how many messages it held. */
  clear(): number {
    const count = this.length;
    this.items = [];
    this.head = 0;
    this.totalBytes = 0;
    return count;
  }

  private shift(): Uint8Array {
    const item = this.items[this.head] as Uint8Array;
    this.items[this.head] = undefined;
    this.head++;
    this.totalBytes -= item.byteLength;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // Compact now and then instead of paying Array#shift's copy on every removal.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
