import { PayloadNotJsonError, PayloadTooLargeError } from '../errors.js';

/** Default limit on a JSON-encoded payload: 256 KiB, as on SQS. */
export const DEFAULT_PAYLOAD_LIMIT_BYTES = 256 * 1024;

/**
 * Encodes a payload as JSON text and enforces the size limit.
 *
 * `JSON.stringify` silently drops or mangles values that are not JSON
 * (`undefined` at the top level becomes `undefined`, a BigInt throws, a cycle
 * throws); those become a clear {@link PayloadNotJsonError} here so a message is
 * never stored as something other than what the caller sent.
 */
export function encodePayload(payload: unknown, limitBytes: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    throw new PayloadNotJsonError(
      `payload cannot be encoded as JSON: ${(error as Error).message}. Send plain objects, arrays, strings, numbers, booleans or null`,
      error,
    );
  }
  if (text === undefined) {
    throw new PayloadNotJsonError(
      `payload of type ${typeof payload} cannot be encoded as JSON; send plain objects, arrays, strings, numbers, booleans or null`,
    );
  }
  // Most payloads are far below the limit; count bytes only when the string
  // could possibly be over it (a UTF-16 unit is at most 3 UTF-8 bytes).
  if (text.length * 3 > limitBytes) {
    const size = Buffer.byteLength(text, 'utf8');
    if (size > limitBytes) throw new PayloadTooLargeError(size, limitBytes);
  }
  return text;
}
