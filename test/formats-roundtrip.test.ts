import { describe, expect, it } from 'vitest';
import { convertLora, WRITE_FORMATS, type WriteFormat } from '../src/formats/index.ts';
import { compareSets, expectedDeltas, FIXTURE_NAMES, writeFixture, type FixtureName } from '../src/samples/lora-fixtures.ts';
import { expectInexpressible, onwardPairs } from './helpers/convert.ts';
import { sha256 } from './helpers/files.ts';
import { withLora } from './helpers/lora.ts';
import { sameBytes, tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const p = useTempDir('loraflow-roundtrip-').path;

async function sameTensors(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([tensorsOf(a), tensorsOf(b)]);
  if (x.size !== y.size) return false;
  for (const [n, t] of x) {
    const u = y.get(n);
    if (!u || u.dtype !== t.dtype || !sameBytes(u.bytes, t.bytes)) return false;
  }
  return true;
}

/** What each fixture cannot be written as, and the words the error must contain. */
const REFUSED: Partial<Record<FixtureName, Partial<Record<WriteFormat, RegExp>>>> = {
  flux_control_lora_format: {
    kohya: /norm\.(query|key)_norm.*kohya files cannot patch a norm scale/,
    diffusers: /norm\.(query|key)_norm.*PEFT files cannot replace a weight/,
  },
  flux_dora_onetrainer_format: {
    kohya: /DoRA on part of a fused weight \(lora_transformer_/,
    comfyui: /DoRA on part of a fused weight \(lora_transformer_/,
    diffusers: /lora_te.*DoRA magnitude per input column/,
  },
  flux_lokr_bfl_format: { diffusers: /diffusion_model\.double_blocks\.0\.img_attn\.proj.*not LoKr/ },
};

describe('every real key list converts to every writable format (or is refused, by name) and back', () => {
  for (const name of FIXTURE_NAMES) {
    it(name, async () => {
      const src = p(`${name}.safetensors`);
      await writeFixture(name, src);
      const before = await sha256(src);
      await withLora(src, async (original) => {
        const expected = await expectedDeltas(original);
        const written: WriteFormat[] = [];
        for (const to of WRITE_FORMATS) {
          const out = p(`${name}.${to}.safetensors`);
          const refusal = REFUSED[name]?.[to];
          if (refusal) {
            await expectInexpressible(src, out, to, refusal);
            continue;
          }
          const report = await convertLora(src, out, { to });
          expect(report).toMatchObject({ from: original.format, to, architecture: 'flux', unknownKeys: [] });
          await withLora(out, async (back) => {
            expect(back.unknownKeys).toEqual([]);
            // a pure conversion moves bytes only (all fixture scales are powers of two): bit-exact deltas
            expect(await compareSets(expected, back)).toMatchObject({ maxRelError: 0 });
          });
          written.push(to);
        }
        // and onwards through the other writers (kohya → diffusers → comfyui → kohya)
        for (const [from, to] of onwardPairs(written)) {
          const out = p(`${name}.${from}.${to}.safetensors`);
          await convertLora(p(`${name}.${from}.safetensors`), out, { to });
          // usually the same bytes as the direct conversion (checked above); otherwise compare deltas
          if (!(await sameTensors(out, p(`${name}.${to}.safetensors`)))) {
            await withLora(out, async (back) => expect((await compareSets(expected, back)).maxRelError).toBe(0));
          }
        }
      });
      expect(await sha256(src)).toBe(before);
    });
  }
});

