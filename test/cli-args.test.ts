/** Arguments that used to be misread: negative numbers after an option, non-finite weights, `--set __proto__`. */
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/cli/parse-args.ts';
import { parseWeighted } from '../src/cli/recipes/execute.ts';
import { parseSetArgs } from '../src/graph/overrides.ts';
import { cli } from './helpers/cli.ts';

describe('command-line arguments', () => {
  it('an option taking a value takes a negative number as it', () => {
    const options = { rank: { type: 'string' }, energy: { type: 'string' }, json: { type: 'boolean' } } as const;
    const r = parseArgs({ args: ['--rank', '-3', '--energy', '-.5', 'a', '-'], options, allowPositionals: true });
    expect(r.values).toEqual({ rank: '-3', energy: '-.5' });
    expect(r.positionals).toEqual(['a', '-']);
    // a boolean option does not swallow what follows, and a real option after a value option stays an option
    expect(() => parseArgs({ args: ['--rank', '--json'], options })).toThrow(/ambiguous|argument missing/);
  });

  it('resize --rank -3 says what is wrong with the rank (exit 2)', async () => {
    const r = await cli('resize', 'in.safetensors', 'out.safetensors', '--rank', '-3', '--dry-run');
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('ambiguous');
    expect(r.stderr).toMatch(/rank/);
  });

  it('a weight that is a word for a non-finite number is refused, not taken for part of the file name', () => {
    for (const w of ['nan', 'NaN', 'inf', '-inf', '+Infinity', '1e999']) {
      expect(() => parseWeighted(`a.safetensors:${w}`), w).toThrow(`the weight ${w} is not a finite number`);
    }
    expect(parseWeighted('a.safetensors:-0.5')).toEqual({ path: 'a.safetensors', weight: -0.5 });
    expect(parseWeighted('C:\\loras\\a.safetensors')).toEqual({ path: 'C:\\loras\\a.safetensors', weight: 1 });
    expect(parseWeighted('dir:name.safetensors')).toEqual({ path: 'dir:name.safetensors', weight: 1 });
  });

  it('--set __proto__=1 is a name like any other, so it is reported as not exposed', async () => {
    const set = parseSetArgs(['__proto__=1', 'constructor=2']);
    expect(Object.keys(set)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(set)).toBe(Object.prototype);
    const r = await cli('run', new URL('../graphs/convert-aitoolkit-to-kohya.json', import.meta.url).pathname, '--set', '__proto__=1', '--dry-run');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--set __proto__: the recipe exposes no such name');
  });
});
