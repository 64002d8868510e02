import { ValidationError } from '../errors.js';

/**
 * A subscription filter on message headers: every listed header must be
 * present and equal to the value, or to one of the values when a list is
 * given. `{}` matches everything.
 *
 * @example { type: 'order', region: ['eu', 'us'] }
 */
export type HeaderFilter = Record<string, string | string[]>;

/** True when `headers` satisfies every condition of `filter`. */
export function matchesHeaderFilter(filter: HeaderFilter, headers: Record<string, string> | null): boolean {
  for (const name of Object.keys(filter)) {
    const want = filter[name];
    const have = headers?.[name];
    if (have === undefined) return false;
    if (Array.isArray(want) ? !want.includes(have) : want !== have) return false;
  }
  return true;
}

/** Validates a filter given by a caller. */
export function parseHeaderFilter(input: unknown): HeaderFilter {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationError('filter must be an object of header name to value or list of values');
  }
  const out: HeaderFilter = {};
  for (const [name, value] of Object.entries(input as Record<string, unknown>)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) {
      out[name] = [...value];
    } else {
      throw new ValidationError(`filter.${name} must be a string or a non-empty list of strings`);
    }
  }
  return out;
}
