/**
 * Adapters that must not be merged silently (issue 11): NaN/±Inf in any adapter tensor, files that
 * change nothing (only alphas, only unknown keys, `{}`, half a module), input mismatches (a LoRA of
 * another family, a block the base lacks, a LoRA given as the base), integer or 3-D factors; and
 * what a result must say (non-finite outputs by tensor, loraflow as the software, bias diffs).
 * Library calls check values and messages; the CLI runs the real binary and checks exit code 2,
 * stderr and that no output file appears.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { LoraflowError } from '../src/errors.ts';
import { readLora } from '../src/formats/read.ts';
import { writeLora } from '../src/formats/write/index.ts';
import type { Adapter } from '../src/adapter/model.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { denseDelta } from '../src/lora/dense-delta.ts';
import { extractLora } from '../src/lora/extract.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { countNonFiniteStored, nonFiniteStored } from '../src/tensor/finite.ts';
import { fluxCheckpointEntries, writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { writeSdCheckpoint } from '../src/samples/sd-checkpoint.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const tmp = useTempDir('loraflow-bad-adapters-');
const SMALL = { scale: 64, doubleBlocks: 2, singleBlocks: 2 } as const;
/** kohya module on double_blocks.0.img_attn.proj (48×48 at width divisor 64). */
const MOD = 'lora_unet_double_blocks_0_img_attn_proj';
const H = 48;

let base: string;
let baseF16: string;

beforeAll(async () => {
  await useBackend('wasm');
  base = tmp.path('base.safetensors');
  baseF16 = tmp.path('base-f16.safetensors');
  await writeFluxCheckpoint(base, SMALL);
  await writeFluxCheckpoint(baseF16, { ...SMALL, dtype: 'F16' });
});

interface Spec {
  shape: number[];
  dtype?: DType;
  values?: Float32Array | number[];
  fill?: number;
}

let fileNo = 0;
/** A hand-made safetensors file: each tensor's values (or a constant fill), shape and dtype. */
async function handMade(tensors: Record<string, Spec>, name = `f${fileNo++}`, metadata?: Record<string, string>): Promise<string> {
  const path = tmp.path(`${name}.safetensors`);
  const entries: TensorEntry[] = Object.entries(tensors).map(([key, s]) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const dtype = s.dtype ?? 'F32';
    const values = s.values ? Float32Array.from(s.values) : Float32Array.from({ length: n }, (_, i) => s.fill ?? 0.01 * (((i * 7) % 11) - 5));
    return { name: key, shape: s.shape, dtype, data: async () => encodeFromF32(values, dtype) };
  });
  await writeSafetensors(path, entries, { metadata, order: 'given' });
  return path;
}

/** A plain kohya LoRA module, with `poison` overriding some tensors. */
function loraModule(dtype: DType = 'F32', extra: Record<string, Spec> = {}): Record<string, Spec> {
  return {
    [`${MOD}.lora_down.weight`]: { shape: [4, H], dtype },
    [`${MOD}.lora_up.weight`]: { shape: [H, 4], dtype },
    [`${MOD}.alpha`]: { shape: [], dtype, values: [4] },
    ...extra,
  };
}

function poisoned(shape: number[], at: number, value: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Float32Array.from({ length: n }, (_, i) => 0.01 * ((i % 5) - 2));
  v[at] = value;
  return v;
}

async function rejection(p: Promise<unknown>): Promise<LoraflowError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(LoraflowError);
  return e as LoraflowError;
}

function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp.dir, timeout: 60_000, env: { ...process.env, LORAFLOW_BACKEND: 'wasm' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Runs the CLI expecting exit 2 and no `out` (nor any other new file in its directory). */
async function refused(out: string, ...args: string[]): Promise<string> {
  const before = (await readdir(tmp.dir)).sort();
  const r = await run(...args);
  expect(r.code, r.stdout + r.stderr).toBe(2);
  expect(existsSync(out)).toBe(false);
  expect((await readdir(tmp.dir)).sort()).toEqual(before);
  return r.stderr;
}

// ---------------------------------------------------------------------------------------------

describe('non-finite values in adapter tensors', () => {
  const values = [NaN, Infinity, -Infinity];
  const kinds = ['NaN', '+Inf', '−Inf'];
  const dtypes: DType[] = ['F32', 'F16', 'BF16'];

  /** Every role that holds weights, in every float dtype, poisoned at the first, middle or last element. */
  const cases: { role: string; key: string; shape: number[] }[] = [
    { role: 'down', key: `${MOD}.lora_down.weight`, shape: [4, H] },
    { role: 'up', key: `${MOD}.lora_up.weight`, shape: [H, 4] },
    { role: 'DoRA magnitude', key: `${MOD}.dora_scale`, shape: [H, 1] },
    { role: 'LoHa hada_w2_b', key: `${MOD}.hada_w2_b`, shape: [4, H] },
    { role: 'LoKr lokr_w1', key: `${MOD}.lokr_w1`, shape: [4, 4] },
  ];

  function moduleFor(role: string, dtype: DType): Record<string, Spec> {
    if (role.startsWith('LoHa')) {
      return {
        [`${MOD}.hada_w1_a`]: { shape: [H, 4], dtype },
        [`${MOD}.hada_w1_b`]: { shape: [4, H], dtype },
        [`${MOD}.hada_w2_a`]: { shape: [H, 4], dtype },
        [`${MOD}.hada_w2_b`]: { shape: [4, H], dtype },
        [`${MOD}.alpha`]: { shape: [], dtype, values: [4] },
      };
    }
    if (role.startsWith('LoKr')) return { [`${MOD}.lokr_w1`]: { shape: [4, 4], dtype }, [`${MOD}.lokr_w2`]: { shape: [12, 12], dtype } };
    if (role.startsWith('DoRA')) return loraModule(dtype, { [`${MOD}.dora_scale`]: { shape: [H, 1], dtype, fill: 1 } });
    return loraModule(dtype);
  }

  let k = 0;
  for (const c of cases) {
    for (const dtype of dtypes) {
      const which = k++;
      const value = values[which % 3]!;
      const n = c.shape.reduce((a, b) => a * b, 1);
      const at = [0, Math.floor(n / 2), n - 1][Math.floor(which / 3) % 3]!;
      it(`${c.role} (${dtype}) with ${kinds[which % 3]} at index ${at}: refused on decode and on a byte copy, naming file, key and count; allowed, it is reported`, async () => {
        const path = await handMade({ ...moduleFor(c.role, dtype), [c.key]: { shape: c.shape, dtype, values: poisoned(c.shape, at, value) } });
        const expected = `${path}: tensor ${c.key} holds 1 non-finite value of ${n} (1 ${kinds[which % 3]}; first at index ${at})`;

        // decoding (what merge, apply, resize, block weights, scale do)
        const set = await readLora(path);
        try {
          const patch = set.patches[0]!;
          const decode = c.role.startsWith('DoRA') ? patch.dora!.magnitude.f32() : denseDelta(patch.adapter, patch.source.module);
          const e = await rejection(decode);
          expect(e.fault).toBe('input');
          expect(e.code).toBe('NON_FINITE');
          expect(e.message).toContain(expected);
          // a conversion copying the stored bytes checks them too
          const out = tmp.path(`copy-${which}.safetensors`);
          const again = await readLora(path);
          try {
            const w = await rejection(writeLora(out, again, { format: 'kohya' }));
            expect(w.code).toBe('NON_FINITE');
            expect(w.message).toContain(expected);
            expect(existsSync(out)).toBe(false);
          } finally {
            await again.close();
          }
        } finally {
          await set.close();
        }

        // allowed: the same file goes through, and the written file's report names the tensor
        const allowed = await readLora(path, { allowNonFinite: true });
        try {
          const out = tmp.path(`allowed-${which}.safetensors`);
          const logs: string[] = [];
          const report = await writeLora(out, allowed, { format: 'kohya', ctx: { log: (m) => logs.push(m) } });
          expect(report.nonFinite).toEqual([{ tensor: c.key, count: 1 }]);
          expect(logs.join('\n')).toContain(`${c.key} (1)`);
          const stored = await withSafetensors(out, async (f) => ({ bytes: await f.readBytes(c.key), dtype: f.info(c.key).dtype as DType }));
          expect(countNonFiniteStored(stored.bytes, stored.dtype)).toBe(1);
        } finally {
          await allowed.close();
        }
      });
    }
  }

  it('a non-finite alpha is refused when the file is read (the scale would poison every value), and allowed on request', async () => {
    for (const [i, dtype] of dtypes.entries()) {
      const path = await handMade(loraModule(dtype, { [`${MOD}.alpha`]: { shape: [], dtype, values: [values[i]!] } }));
      const e = await rejection(readLora(path));
      expect(e.code).toBe('NON_FINITE');
      expect(e.message).toContain(`${path}: tensor ${MOD}.alpha holds 1 non-finite value of 1 (1 ${kinds[i]}; first at index 0)`);
      const allowed = await readLora(path, { allowNonFinite: true });
      expect((allowed.patches[0]!.adapter as Adapter & { alpha?: number }).alpha).toBe(values[i]);
      await allowed.close();
    }
  });

  it('counts the stored codes of every float dtype, fp8 included (e4m3fn has NaN only, e5m2 Inf and NaN)', () => {
    expect(countNonFiniteStored(new Uint8Array([0x7f, 0xff, 0x7e, 0x00]), 'F8_E4M3')).toBe(2);
    expect(nonFiniteStored(new Uint8Array([0x7c, 0xfc, 0x7d, 0x7b]), 'F8_E5M2')).toMatchObject({ count: 3, nan: 1, posInf: 1, negInf: 1, first: 0 });
    expect(nonFiniteStored(new Uint8Array(new Uint16Array([0x3c00, 0x7c00, 0xfe00]).buffer), 'F16')).toMatchObject({ count: 2, posInf: 1, nan: 1, first: 1 });
    expect(nonFiniteStored(new Uint8Array(new Float64Array([1, -Infinity, NaN]).buffer), 'F64')).toMatchObject({ count: 2, negInf: 1, nan: 1, first: 1 });
    expect(countNonFiniteStored(new Uint8Array([1, 2, 3]), 'I8')).toBe(0);
  });

  it('apply: refused before a file appears; allowed, the report and the log name the poisoned weight', async () => {
    const path = await handMade(loraModule('F32', { [`${MOD}.lora_down.weight`]: { shape: [4, H], values: poisoned([4, H], 5, NaN) } }), 'apply-nan');
    const out = tmp.path('apply-nan-out.safetensors');
    const set = await readLora(path);
    const e = await rejection(applyToBase({ base, out, loras: [{ set, weight: 1 }], threads: 0 }));
    await set.close();
    expect(e.code).toBe('NON_FINITE');
    expect(e.message).toContain(`tensor ${MOD}.lora_down.weight holds 1 non-finite value of 192`);
    expect(existsSync(out)).toBe(false);

    const allowed = await readLora(path, { allowNonFinite: true });
    const logs: string[] = [];
    const report = await applyToBase({ base, out, loras: [{ set: allowed, weight: 1 }], threads: 0, ctx: { log: (m) => logs.push(m) } });
    await allowed.close();
    // column 5 of the down is NaN: every row of ΔW has one NaN column
    expect(report.files[0]!.nonFinite).toEqual([{ tensor: 'double_blocks.0.img_attn.proj.weight', count: H }]);
    expect(logs).toContain(`base output: tensor double_blocks.0.img_attn.proj.weight: ${H} non-finite values (NaN/±Inf) written`);
    expect(report.notes.join('\n')).toContain('double_blocks.0.img_attn.proj.weight (48)');
  });

  it('apply: an F16 overflow to Inf is reported by tensor; fp8 saturates (out of range, never non-finite); a BF16 overflow is reported', async () => {
    // ΔW = 4 · 200 · 200 = 160000 per value: past F16's 65504
    const path = await handMade(loraModule('F32', { [`${MOD}.lora_down.weight`]: { shape: [4, H], fill: 200 }, [`${MOD}.lora_up.weight`]: { shape: [H, 4], fill: 200 } }), 'overflow');
    const set = await readLora(path);
    try {
      const f16 = await applyToBase({ base: baseF16, out: tmp.path('f16-out.safetensors'), loras: [{ set, weight: 1 }], threads: 0 });
      expect(f16.files[0]!.nonFinite).toEqual([{ tensor: 'double_blocks.0.img_attn.proj.weight', count: H * H }]);
      expect(f16.files[0]!.outOfRange).toBe(H * H);
      const fp8 = await applyToBase({ base: baseF16, out: tmp.path('fp8-out.safetensors'), loras: [{ set, weight: 1 }], dtype: 'fp8_e4m3fn', threads: 0 });
      expect(fp8.files[0]!.nonFinite).toEqual([]);
      expect(fp8.files[0]!.outOfRange).toBe(H * H);
      const stored = await withSafetensors(tmp.path('fp8-out.safetensors'), (f) => f.readBytes('double_blocks.0.img_attn.proj.weight'));
      expect(countNonFiniteStored(stored, 'F8_E4M3')).toBe(0);
    } finally {
      await set.close();
    }
    // 1e20 · 1e20 overflows f32 itself, so the BF16 (fast path) output is Inf
    const huge = await handMade(loraModule('F32', { [`${MOD}.lora_down.weight`]: { shape: [4, H], fill: 1e20 }, [`${MOD}.lora_up.weight`]: { shape: [H, 4], fill: 1e20 } }), 'overflow-bf16');
    const big = await readLora(huge);
    try {
      const bf16 = await applyToBase({ base, out: tmp.path('bf16-out.safetensors'), loras: [{ set: big, weight: 1 }], threads: 0 });
      expect(bf16.files[0]!.nonFinite).toEqual([{ tensor: 'double_blocks.0.img_attn.proj.weight', count: H * H }]);
    } finally {
      await big.close();
    }
  });

  it('an SVD of values let through is an input error naming the module (merge svd, resize)', async () => {
    const path = await handMade(loraModule('F32', { [`${MOD}.lora_up.weight`]: { shape: [H, 4], values: poisoned([H, 4], 0, Infinity) } }), 'svd-inf');
    const set = await readLora(path, { allowNonFinite: true });
    try {
      const e = await rejection(mergeLoras([{ set, weight: 1 }], { method: 'svd', rank: 2 }));
      expect(e.fault).toBe('input');
      expect(e.code).toBe('NON_FINITE');
      expect(e.message).toMatch(new RegExp(`merge \\(svd\\): transformer:double_blocks\\.0\\.img_attn\\.proj\\.weight \\(${MOD}, input 1\\): 1 non-finite value \\(NaN/±Inf\\)`));
    } finally {
      await set.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('adapters that change nothing usable', () => {
  it('a module with half its factors is an error naming it and what is missing', async () => {
    const down = await handMade({ [`${MOD}.lora_down.weight`]: { shape: [4, H] }, [`${MOD}.alpha`]: { shape: [], values: [4] } });
    let e = await rejection(readLora(down));
    expect(e.code).toBe('INCOMPLETE');
    expect(e.message).toBe(`${down}: ${MOD}: incomplete LoRA module: it has ${MOD}.lora_down.weight but no up factor (lora_up / lora_B), so it changes nothing usable`);
    // beside a complete module it is still an error
    const mixed = await handMade({ ...loraModule(), 'lora_unet_double_blocks_1_img_attn_proj.lora_B.weight': { shape: [H, 4] } });
    e = await rejection(readLora(mixed));
    expect(e.message).toContain('lora_unet_double_blocks_1_img_attn_proj: incomplete LoRA module: it has lora_unet_double_blocks_1_img_attn_proj.lora_B.weight but no down factor');
    const loha = await handMade({ [`${MOD}.hada_w1_a`]: { shape: [H, 4] }, [`${MOD}.hada_w1_b`]: { shape: [4, H] }, [`${MOD}.hada_w2_a`]: { shape: [H, 4] } });
    e = await rejection(readLora(loha));
    expect(e.message).toContain(`${MOD}: incomplete LoHa module: it has ${MOD}.hada_w1_a, ${MOD}.hada_w1_b, ${MOD}.hada_w2_a but no hada_w2_b`);
  });

  it('a file with no applicable module is an error saying what it holds', async () => {
    const alphas = await handMade({ [`${MOD}.alpha`]: { shape: [], values: [4] }, 'lora_unet_double_blocks_1_img_attn_proj.alpha': { shape: [], values: [4] } });
    let e = await rejection(readLora(alphas));
    expect(e.code).toBe('NO_MODULES');
    expect(e.message).toBe(
      `${alphas}: no adapter module loraflow can apply: none of its 2 tensors forms a LoRA, LoHa, LoKr or diff module (the file holds only alphas, without their lora_down/lora_up); keys not understood: ${MOD}.alpha, lora_unet_double_blocks_1_img_attn_proj.alpha`,
    );
    const unknown = await handMade({ 'foo.bar': { shape: [2] }, 'some.other_thing': { shape: [3] } });
    e = await rejection(readLora(unknown));
    expect(e.message).toBe(`${unknown}: no adapter module loraflow can apply: none of its 2 tensors forms a LoRA, LoHa, LoKr or diff module; keys not understood: foo.bar, some.other_thing`);
    const empty = await handMade({});
    e = await rejection(readLora(empty));
    expect(e.message).toBe(`${empty}: holds no tensors: an empty file is not a LoRA`);
    expect(e.fault).toBe('input');
  });

  it('apply: a LoRA all of whose modules are left out (text encoders, ignoreTextEncoders) is refused, not copied through', async () => {
    const te = 'lora_te1_text_model_encoder_layers_0_mlp_fc1';
    const path = await handMade({ [`${te}.lora_down.weight`]: { shape: [4, 12] }, [`${te}.lora_up.weight`]: { shape: [48, 4] } }, 'te-only');
    const set = await readLora(path);
    const out = tmp.path('te-only-out.safetensors');
    const e = await rejection(applyToBase({ base, out, loras: [{ set, weight: 1, path }], ignoreTextEncoders: true, threads: 0 }));
    await set.close();
    expect(e.fault).toBe('input');
    expect(e.message).toBe(`apply: LoRA 1 (${path}) changes nothing in ${base}: all 1 of its modules are text-encoder modules left out by ignoreTextEncoders; nothing was written`);
    expect(existsSync(out)).toBe(false);
  });

  it('extract of identical checkpoints says so instead of producing an empty LoRA', async () => {
    const e = await rejection(extractLora({ base, tuned: base, rank: 2 }));
    expect(e.code).toBe('EXTRACT');
    expect(e.message).toBe(`extract: ${base} and ${base} are identical (all 84 tensors hold the same values): there is no difference to extract, so no LoRA was written`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('input mismatches are input errors naming file and module', () => {
  it('apply: a LoRA given as the base, a block the base lacks, a LoRA of another family', async () => {
    const lora = await handMade(loraModule(), 'as-base');
    const set = await readLora(lora);
    let e = await rejection(applyToBase({ base: lora, out: tmp.path('x.safetensors'), loras: [{ set, weight: 1 }], threads: 0 }));
    expect(e.fault).toBe('input');
    expect(e.message).toContain(`${lora} is a LoRA, not a base checkpoint: its header has 2 adapter tensors (such as ${MOD}.lora_down.weight, ${MOD}.lora_up.weight)`);
    e = await rejection(extractLora({ base: lora, tuned: base, rank: 2 }));
    expect(e.message).toContain(`extract: ${lora} is a LoRA, not a base checkpoint`);
    e = await rejection(extractLora({ base, tuned: lora, rank: 2 }));
    expect(e.message).toContain(`extract: ${lora} is a LoRA, not a fine-tuned checkpoint`);
    await set.close();

    const block30 = await handMade(
      { 'lora_unet_double_blocks_30_img_attn_proj.lora_down.weight': { shape: [4, H] }, 'lora_unet_double_blocks_30_img_attn_proj.lora_up.weight': { shape: [H, 4] } },
      'block30',
    );
    const b30 = await readLora(block30);
    e = await rejection(applyToBase({ base, out: tmp.path('x.safetensors'), loras: [{ set: b30, weight: 1, path: block30 }], threads: 0 }));
    await b30.close();
    expect(e.fault).toBe('input');
    expect(e.message).toContain(
      `lora_unet_double_blocks_30_img_attn_proj (LoRA 1): ${base} has no weight double_blocks.30.img_attn.proj.weight; the base has 2 double_blocks (0–1), so this LoRA is for a model with more blocks [from ${block30}]`,
    );

    const sdxl = tmp.path('sdxl-base.safetensors');
    await writeSdCheckpoint(sdxl, { arch: 'sdxl', factor: 64 });
    const flux = await readLora(lora);
    e = await rejection(applyToBase({ base: sdxl, out: tmp.path('x.safetensors'), loras: [{ set: flux, weight: 1, path: lora }], threads: 0 }));
    await flux.close();
    expect(e.fault).toBe('input');
    expect(e.message).toMatch(new RegExp(`is an SDXL checkpoint .*but LoRA 1 is a kohya LoRA for FLUX\\.1 \\(${lora.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}, modules such as ${MOD}\\)`));
  });

  it('integer or boolean factors and a 3-D linear down are refused, naming key and dtype or shape', async () => {
    const i8 = await handMade(loraModule('F32', { [`${MOD}.lora_down.weight`]: { shape: [4, H], dtype: 'I8', fill: 1 } }));
    let e = await rejection(readLora(i8));
    expect(e.code).toBe('BAD_DTYPE');
    expect(e.message).toBe(`${i8}: ${MOD}: tensor ${MOD}.lora_down.weight is stored as I8; adapter factors must be floating point (F32, F16, BF16, F64 or FP8)`);
    const bool = await handMade(loraModule('F32', { [`${MOD}.lora_up.weight`]: { shape: [H, 4], dtype: 'BOOL', fill: 1 } }));
    e = await rejection(readLora(bool));
    expect(e.message).toContain(`tensor ${MOD}.lora_up.weight is stored as BOOL`);
    // alphas may be integers (sd-scripts tools write I64), not booleans
    const i64Alpha = await handMade(loraModule('F32', { [`${MOD}.alpha`]: { shape: [], dtype: 'I64', values: [4] } }));
    const ok = await readLora(i64Alpha);
    expect((ok.patches[0]!.adapter as { scale: number }).scale).toBe(1);
    await ok.close();
    const down3d = await handMade(loraModule('F32', { [`${MOD}.lora_down.weight`]: { shape: [4, 6, 8] } }));
    e = await rejection(readLora(down3d));
    expect(e.code).toBe('BAD_SHAPES');
    expect(e.message).toBe(`${down3d}: ${MOD}: down ${MOD}.lora_down.weight has shape [4,6,8] (3-D); a LoRA down is [rank, in] (linear) or [rank, in, kh, kw] (conv)`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('what written files say', () => {
  it('a merged or converted LoRA names loraflow as its software and keeps the sources\' in source_software', async () => {
    const ait = tmp.path('ait.safetensors');
    const kohya = tmp.path('kohya.safetensors');
    await writeSampleLora(ait, { format: 'aitoolkit', blocks: { double: 1, single: 1 } });
    await writeSampleLora(kohya, { format: 'kohya', blocks: { double: 1, single: 1 } });
    const a = await readLora(ait);
    const b = await readLora(kohya);
    const aitSoftware = a.metadata.software!;
    expect(JSON.parse(aitSoftware)).toMatchObject({ name: 'ai-toolkit' });
    const { set } = await mergeLoras([{ set: a, weight: 1 }, { set: b, weight: 1 }], { method: 'concat' });
    const merged = tmp.path('merged.safetensors');
    await writeLora(merged, set, { format: 'kohya' });
    const converted = tmp.path('converted.safetensors');
    await writeLora(converted, a, { format: 'kohya' });
    await a.close();
    await b.close();
    for (const path of [merged, converted]) {
      const meta = await withSafetensors(path, async (f) => ({ ...f.metadata }));
      expect(JSON.parse(meta.software!)).toMatchObject({ name: 'loraflow' });
      expect(meta.source_software).toBe(aitSoftware);
    }
    // converting loraflow's output again keeps the original source
    const again = await readLora(converted);
    const twice = tmp.path('converted-twice.safetensors');
    await writeLora(twice, again, { format: 'diffusers' });
    await again.close();
    const meta = await withSafetensors(twice, async (f) => ({ ...f.metadata }));
    expect(JSON.parse(meta.software!)).toMatchObject({ name: 'loraflow' });
    expect(meta.source_software).toBe(aitSoftware);
  });

  it('two sources with different software are both named', async () => {
    const one = await handMade(loraModule(), 'sw1', { software: JSON.stringify({ name: 'ai-toolkit' }) });
    const two = await handMade(loraModule(), 'sw2', { software: 'OneTrainer' });
    const [a, b] = [await readLora(one), await readLora(two)];
    const { set } = await mergeLoras([{ set: a, weight: 1 }, { set: b, weight: 1 }], { method: 'concat' });
    await Promise.all([a.close(), b.close()]);
    expect(set.metadata.software).toBeUndefined();
    expect(JSON.parse(set.metadata.source_software!)).toEqual([{ name: 'ai-toolkit' }, 'OneTrainer']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('loraflow CLI (real process)', () => {
  const nanLora = () => handMade(loraModule('BF16', { [`${MOD}.lora_up.weight`]: { shape: [H, 4], dtype: 'BF16', values: poisoned([H, 4], H * 4 - 1, -Infinity) } }), 'cli-nan');
  const nanKey = `${MOD}.lora_up.weight`;
  const nanMessage = (path: string) => `${path}: tensor ${nanKey} holds 1 non-finite value of 192 (1 −Inf; first at index 191)`;

  it('convert: refuses NaN/Inf (exit 2, file, key and count on stderr, no output); --allow-non-finite writes it and reports it', async () => {
    const lora = await nanLora();
    const out = tmp.path('cli-convert.safetensors');
    for (const to of ['kohya', 'diffusers']) {
      const stderr = await refused(out, 'convert', lora, out, '--to', to);
      expect(stderr).toContain(nanMessage(lora));
      expect(stderr).toContain('--allow-non-finite');
    }
    const r = await run('convert', lora, out, '--to', 'comfyui', '--allow-non-finite');
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(r.stdout).toContain('"nonFinite":[{"tensor":"diffusion_model.double_blocks.0.img_attn.proj.lora_up.weight","count":1}]');
    const help = await run('convert', '--help');
    expect(help.stdout + help.stderr).toMatch(/--allow-non-finite\s+use LoRAs whose tensors hold NaN or ±Inf/);
  });

  it('apply, merge and resize refuse it too, and document the flag', async () => {
    const lora = await nanLora();
    const out = tmp.path('cli-out.safetensors');
    expect(await refused(out, 'apply', base, out, lora)).toContain(nanMessage(lora));
    expect(await refused(out, 'merge', out, lora)).toContain(nanMessage(lora));
    expect(await refused(out, 'resize', lora, out, '--rank', '2')).toContain(nanMessage(lora));
    // allowed, an SVD still cannot factor it: an input error, not a crash
    expect(await refused(out, 'merge', out, lora, '--method', 'svd', '--rank', '2', '--allow-non-finite')).toContain('an SVD cannot factor them');
    const applied = await run('apply', base, out, lora, '--allow-non-finite');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('"nonFinite":[{"tensor":"double_blocks.0.img_attn.proj.weight","count":48}]');
    expect(applied.stderr + applied.stdout).toContain('base output: tensor double_blocks.0.img_attn.proj.weight: 48 non-finite values (NaN/±Inf) written');
    for (const command of ['apply', 'merge', 'resize']) {
      const help = await run(command, '--help');
      expect(help.stdout + help.stderr, command).toContain('--allow-non-finite');
    }
  });

  it('apply and convert refuse files that change nothing (only alphas, unknown keys, {}, half a module), naming the file', async () => {
    const out = tmp.path('cli-nothing.safetensors');
    const alphas = await handMade({ [`${MOD}.alpha`]: { shape: [], values: [4] } }, 'cli-alphas');
    const unknown = await handMade({ 'foo.bar': { shape: [2] } }, 'cli-unknown');
    const empty = await handMade({}, 'cli-empty');
    const half = await handMade({ [`${MOD}.lora_down.weight`]: { shape: [4, H] }, [`${MOD}.alpha`]: { shape: [], values: [4] } }, 'cli-half');
    expect(await refused(out, 'apply', base, out, alphas)).toContain(`${alphas}: no adapter module loraflow can apply`);
    expect(await refused(out, 'apply', base, out, unknown)).toContain(`${unknown}: no adapter module loraflow can apply`);
    expect(await refused(out, 'apply', base, out, empty)).toContain(`${empty}: holds no tensors`);
    expect(await refused(out, 'apply', base, out, half)).toContain(`${half}: ${MOD}: incomplete LoRA module`);
    expect(await refused(out, 'convert', half, out, '--to', 'kohya')).toContain(`${half}: ${MOD}: incomplete LoRA module`);
    expect(await refused(out, 'convert', empty, out, '--to', 'diffusers')).toContain(`${empty}: holds no tensors`);
  });

  it('apply/extract with a LoRA as the base, a missing block, another family, identical checkpoints: exit 2', async () => {
    const lora = await handMade(loraModule(), 'cli-lora');
    const out = tmp.path('cli-mismatch.safetensors');
    expect(await refused(out, 'apply', lora, out, lora)).toContain(`${lora} is a LoRA, not a base checkpoint`);
    expect(await refused(out, 'extract', lora, base, out, '--rank', '2')).toContain(`${lora} is a LoRA, not a base checkpoint`);
    const block30 = await handMade(
      { 'lora_unet_double_blocks_30_img_attn_proj.lora_down.weight': { shape: [4, H] }, 'lora_unet_double_blocks_30_img_attn_proj.lora_up.weight': { shape: [H, 4] } },
      'cli-block30',
    );
    expect(await refused(out, 'apply', base, out, block30)).toContain(`the base has 2 double_blocks (0–1), so this LoRA is for a model with more blocks [from ${block30}]`);
    const sdxl = tmp.path('cli-sdxl.safetensors');
    await writeSdCheckpoint(sdxl, { arch: 'sdxl', factor: 64 });
    expect(await refused(out, 'apply', sdxl, out, lora)).toContain(`LoRA 1 is a kohya LoRA for FLUX.1 (${lora}, modules such as ${MOD})`);
    expect(await refused(out, 'extract', base, base, out, '--rank', '2')).toContain(`${base} and ${base} are identical (all 84 tensors hold the same values)`);
  });

  it('extract: bias changes are kept as diff_b with a save note saying diffusers and sd-scripts drop them; --biases drop leaves them out, with a note', async () => {
    const tuned = tmp.path('tuned.safetensors');
    const entries = fluxCheckpointEntries(SMALL).map((e) => {
      if (e.name !== 'double_blocks.0.img_attn.proj.weight' && e.name !== 'double_blocks.0.img_attn.proj.bias') return e;
      const n = e.shape.reduce((a, b) => a * b, 1);
      return { ...e, data: async () => encodeFromF32(Float32Array.from({ length: n }, (_, i) => 0.25 * Math.sin(i)), e.dtype as DType) };
    });
    await writeSafetensors(tuned, entries, { order: 'reference' });
    const kept = tmp.path('extract-kept.safetensors');
    const r = await run('extract', base, tuned, kept, '--rank', '2');
    expect(r.code, r.stderr).toBe(0);
    const keys = await withSafetensors(kept, async (f) => f.tensors.map((t) => t.name));
    expect(keys).toContain(`${MOD}.diff_b`);
    expect(r.stdout).toContain('1 bias change written as .diff_b keys: ComfyUI applies them, but diffusers and sd-scripts load this LoRA without them and say nothing');
    const dropped = tmp.path('extract-dropped.safetensors');
    const d = await run('extract', base, tuned, dropped, '--rank', '2', '--biases', 'drop');
    expect(d.code, d.stderr).toBe(0);
    expect(await withSafetensors(dropped, async (f) => f.tensors.map((t) => t.name))).not.toContain(`${MOD}.diff_b`);
    expect(d.stdout + d.stderr).toContain('1 changed 1-D tensor (biases, norm scales) left out (keepBiases false / --biases drop)');
    const bad = await run('extract', base, tuned, tmp.path('never.safetensors'), '--rank', '2', '--biases', 'maybe');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--biases must be keep or drop, got "maybe"');
  });
});
