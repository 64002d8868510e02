import { InvalidQueueNameError } from '../errors.js';

/**
 * Queue and topic names are used in SQL parameters, file names (SQLite wake-up
 * files), URLs and metric labels, so they are held to one strict pattern:
 * a letter or digit first, then letters, digits, `.`, `_`, `-` or `:`; at most
 * 128 characters.
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Throws {@link InvalidQueueNameError} unless `name` is a valid queue name. */
export function assertQueueName(name: unknown, what = 'queue'): asserts name is string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new InvalidQueueNameError(
      `${what} name ${describe(name)} is not valid: use 1 to 128 characters, letters, digits, ".", "_", "-" or ":", starting with a letter or digit`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return `of type ${value === null ? 'null' : typeof value}`;
}
