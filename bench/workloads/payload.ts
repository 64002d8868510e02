import { now } from '../lib/timing.js';
import type { Payload } from '../systems/queue-system.js';

/** Padding that brings the JSON body to about 200 bytes. */
const PAD = 'x'.repeat(160);

/** The message body: its index, the send-call time, and padding (~200 bytes as JSON). */
export function makePayload(i: number): Payload {
  return { i, t: now(), pad: PAD };
}

export function makePayloads(from: number, count: number): Payload[] {
  const list: Payload[] = [];
  for (let i = 0; i < count; i++) list.push(makePayload(from + i));
  return list;
}
