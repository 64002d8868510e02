import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, SluiceError } from '../../src/errors.js';
import * as api from '../../src/index.js';

const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/errors.md'), 'utf8');

describe('the error registry', () => {
  it('documents every code, and documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/`(SLUICE_[A-Z_]+)`/g)].map((m) => m[1]);
    expect(new Set(documented)).toEqual(new Set(Object.values(ErrorCode)));
  });

  it('exports one class per code, named as the docs say, carrying that code', () => {
    const samples: Record<string, SluiceError> = {
      ValidationError: new api.ValidationError('x'),
      InvalidQueueNameError: new api.InvalidQueueNameError('x'),
      PayloadTooLargeError: new api.PayloadTooLargeError(2, 1),
      PayloadNotJsonError: new api.PayloadNotJsonError('x'),
      QueueFullError: new api.QueueFullError('q', 1, 1),
      LeaseLostError: new api.LeaseLostError('1'),
      MessageNotFoundError: new api.MessageNotFoundError('x'),
      UnrecoverableError: new api.UnrecoverableError('x'),
      ClosedError: new api.ClosedError('x'),
      UnsupportedError: new api.UnsupportedError('x'),
      InvalidUrlError: new api.InvalidUrlError('x'),
      StoreUnavailableError: new api.StoreUnavailableError('x'),
      HandlerTimeoutError: new api.HandlerTimeoutError(1),
      SchemaTooNewError: new api.SchemaTooNewError(2, 1),
    };
    const rows = [...doc.matchAll(/^\| `(SLUICE_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => [m[1], m[2]] as const);
    expect(rows.map(([, cls]) => cls).sort()).toEqual(Object.keys(samples).sort());
    for (const [code, className] of rows) {
      const sample = samples[className as string] as SluiceError;
      expect(sample).toBeInstanceOf(SluiceError);
      expect(sample.code, className).toBe(code);
      expect(sample.name).toBe(className);
    }
  });
});
