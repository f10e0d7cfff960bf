import { randomFillSync } from "node:crypto";

/** Random bytes for 400 ids (10 each) drawn at a time: one call to the generator per 400 ids. */
const random = Buffer.alloc(4000);
let used = random.length;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * A new invocation id: a UUID version 7 (RFC 9562), its first 48 bits the time in milliseconds,
 * the rest random (74 bits). Ids made together sort together, so an index on them (every backend's
 * primary key) receives a batch's rows side by side instead of scattered over the whole index: a
 * claim, a batch of final writes and their new index entries then touch a few pages, not one
 * page per invocation. Unique with overwhelming odds, like a random UUID, and not guessable.
 */
export function newInvocationId(nowMs: number = Date.now()): string {
  if (used + 10 > random.length) {
    randomFillSync(random);
    used = 0;
  }
  const at = used;
  used += 10;
  // 48 bits of milliseconds, then version 7, 12 random bits, the variant (10), 62 random bits.
  const high = Math.floor(nowMs / 0x1_0000_0000);
  const low = nowMs >>> 0;
  const b = random;
  return (
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    HEX[low >>> 24]! +
    HEX[(low >>> 16) & 0xff]! +
    "-" +
    HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    "-" +
    HEX[0x70 | (b[at]! & 0x0f)]! +
    HEX[b[at + 1]!]! +
    "-" +
    HEX[0x80 | (b[at + 2]! & 0x3f)]! +
    HEX[b[at + 3]!]! +
    "-" +
    HEX[b[at + 4]!]! +
    HEX[b[at + 5]!]! +
    HEX[b[at + 6]!]! +
    HEX[b[at + 7]!]! +
    HEX[b[at + 8]!]! +
    HEX[b[at + 9]!]!
  );
}
