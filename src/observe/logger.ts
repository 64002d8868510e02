import { pino } from 'pino';

/**
 * The logging calls Sluice makes: structured fields first, then a message, as
 * pino does. Any pino logger fits; so does a small adapter over another library.
 */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/**
 * JSON lines on standard error at the level in `SLUICE_LOG_LEVEL` (default
 * `warn`): a library should be quiet until something needs a human.
 */
export function defaultLogger(): Logger {
  return pino({ name: 'sluice', level: process.env.SLUICE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
}
