import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertLora, LoraFormatError, readLora, WRITE_FORMATS, type AdapterSet, type WriteFormat } from '../src/formats/index.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { compareSets, expectedDeltas, FIXTURE_NAMES, fixtureDir, writeFixture, type FixtureName } from '../src/testing/lora-fixtures.ts';

let dir: string;
beforeAll(async () => {
  dir = await fixtureDir('loraflow-roundtrip-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const p = (name: string) => join(dir, name);
const exists = (path: string) => stat(path).then(() => true, () => false);

async function tensorsOf(path: string): Promise<Map<string, { dtype: string; bytes: Uint8Array }>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { dtype: string; bytes: Uint8Array }>();
    for (const t of f.tensors) out.set(t.name, { dtype: t.dtype, bytes: await f.readBytes(t.name) });
    return out;
  } finally {
    await f.close();
  }
}

async function sameTensors(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([tensorsOf(a), tensorsOf(b)]);
  if (x.size !== y.size) return false;
  for (const [n, t] of x) {
    const u = y.get(n);
    if (!u || u.dtype !== t.dtype || Buffer.compare(Buffer.from(u.bytes), Buffer.from(t.bytes)) !== 0) return false;
  }
  return true;
}

async function withSet<R>(path: string, fn: (s: AdapterSet) => Promise<R>): Promise<R> {
  const s = await readLora(path);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
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
      const before = createHash('sha256').update(await readFile(src)).digest('hex');
      await withSet(src, async (original) => {
        const expected = await expectedDeltas(original);
        const written: WriteFormat[] = [];
        for (const to of WRITE_FORMATS) {
          const out = p(`${name}.${to}.safetensors`);
          const refusal = REFUSED[name]?.[to];
          if (refusal) {
            const err = await convertLora(src, out, { to }).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(LoraFormatError);
            expect((err as LoraFormatError).code).toBe('INEXPRESSIBLE');
            expect((err as Error).message).toMatch(refusal);
            expect(await exists(out)).toBe(false);
            continue;
          }
          const report = await convertLora(src, out, { to });
          expect(report).toMatchObject({ from: original.format, to, architecture: 'flux', unknownKeys: [] });
          await withSet(out, async (back) => {
            expect(back.unknownKeys).toEqual([]);
            // a pure conversion moves bytes only (all fixture scales are powers of two): bit-exact deltas
            expect(await compareSets(expected, back)).toMatchObject({ maxRelError: 0 });
          });
          written.push(to);
        }
        // and onwards through the other writers (kohya → diffusers → comfyui → kohya)
        for (const [i, from] of written.entries()) {
          const to = written[(i + 1) % written.length]!;
          if (to === from) continue;
          const out = p(`${name}.${from}.${to}.safetensors`);
          await convertLora(p(`${name}.${from}.safetensors`), out, { to });
          // usually the same bytes as the direct conversion (checked above); otherwise compare deltas
          if (!(await sameTensors(out, p(`${name}.${to}.safetensors`)))) {
            await withSet(out, async (back) => expect((await compareSets(expected, back)).maxRelError).toBe(0));
          }
        }
      });
      expect(createHash('sha256').update(await readFile(src)).digest('hex')).toBe(before);
    });
  }
});

