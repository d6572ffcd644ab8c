import { describe, expect, it } from 'vitest';
import { EXIT_CODE, HTTP_STATUS, LoraflowError, faultOf, inputError, runFailure } from '../src/errors.ts';
import { SafetensorsError } from '../src/safetensors/errors.ts';
import { LoraFormatError } from '../src/adapter/errors.ts';
import { UsageError } from '../src/cli/command.ts';
import { RecipeInvalidError } from '../src/graph/problems.ts';
import { LinalgError } from '../src/tensor/linalg-error.ts';

describe('one domain error type', () => {
  it('says whose move it is, and that maps once to exit codes and HTTP statuses', () => {
    expect(EXIT_CODE).toEqual({ input: 2, failure: 1 });
    expect(HTTP_STATUS).toEqual({ input: 422, failure: 500 });
    expect(faultOf(inputError('MERGE', 'x'))).toBe('input');
    expect(faultOf(runFailure('IO', 'x'))).toBe('failure');
  });

  it('every error class of the domain is a LoraflowError with the right fault', () => {
    const cases: [Error, 'input' | 'failure'][] = [
      [new SafetensorsError('HEADER_NOT_JSON', 'a.safetensors', 'bad'), 'input'],
      [new SafetensorsError('WRITE_FAILED', 'a.safetensors', 'disk full'), 'failure'],
      [new LoraFormatError('UNKNOWN_FORMAT', 'no layout'), 'input'],
      [new UsageError('bad flag'), 'input'],
      [new RecipeInvalidError([{ code: 'cycle', message: 'x' }]), 'input'],
      [new LinalgError('not square'), 'failure'],
    ];
    for (const [e, fault] of cases) {
      expect(e, e.name).toBeInstanceOf(LoraflowError);
      expect(faultOf(e), e.name).toBe(fault);
    }
  });

  it('keeps the fault of an error that crossed a worker as a plain object; path and argument errors are input', () => {
    expect(faultOf({ fault: 'input', message: 'x' })).toBe('input');
    expect(faultOf(Object.assign(new Error('loop'), { code: 'ELOOP', syscall: 'open' }))).toBe('input');
    expect(faultOf(Object.assign(new Error('dir'), { code: 'EISDIR', syscall: 'open' }))).toBe('input');
    expect(faultOf(Object.assign(new Error('full'), { code: 'ENOSPC', syscall: 'write' }))).toBe('failure');
    expect(faultOf(Object.assign(new Error('arg'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }))).toBe('input');
    expect(faultOf(new TypeError('bug'))).toBe('failure');
    expect(faultOf(undefined)).toBe('failure');
  });
});
