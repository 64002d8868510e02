import { randomFillSync } from 'node:crypto';

// Tokens are cut from a pool of random bytes refilled 4 KiB at a time: one
// system call per ~340 tokens instead of one per claimed message.
const POOL = Buffer.alloc(4096);
let offset = POOL.length;

/** A new unguessable lease token (16 URL-safe characters, 96 random bits). */
export function newLeaseToken(): string {
  if (offset + 12 > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const token = POOL.toString('base64url', offset, offset + 12);
  offset += 12;
  return token;
}
