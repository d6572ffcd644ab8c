import { beforeAll, describe, expect, it } from 'vitest';
import type { LoraAdapter, Patch } from '../src/adapter/model.ts';
import { resizeLora } from '../src/lora/resize.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { compareDeltas, referenceDeltas } from '../src/samples/reference-delta.ts';
import { BACKENDS, adapterSet, bestRankK, kohyaLike, randomTensor, relFrobenius } from './ops-fixtures.ts';

describe.each(BACKENDS)('resizeLora on %s', (backend) => {
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });

  it('gives the optimal lower-rank factors, keeps the scale (alpha = scale·k) and reports the error', async () => {
    const set = kohyaLike(8, 4, 1); // scale 0.5
    const rank = 3;
    const { set: out, report } = await resizeLora(set, { rank });
    const before = await referenceDeltas(set);
    const after = await referenceDeltas(out);
    let lost = 0;
    let all = 0;
    for (const [key, d] of before) {
      const { approx, s } = bestRankK(d.data, d.rows, d.cols, rank);
      expect(relFrobenius(after.get(key)!.data, approx), key).toBeLessThan(1e-5);
      const l = s.slice(rank).reduce((x, v) => x + v * v, 0);
      const a = s.reduce((x, v) => x + v * v, 0);
      lost += l;
      all += a;
      const m = report.modules.find((mod) => `transformer:${set.patches.find((p) => p.source.module === mod.module)!.target}` === key)!;
      expect(m).toMatchObject({ fromRank: 8, toRank: rank });
      expect(m.relError).toBeCloseTo(Math.sqrt(l / a), 5);
    }
    expect(report.relError).toBeCloseTo(Math.sqrt(lost / all), 5);
    for (const p of out.patches) {
      const a = p.adapter as LoraAdapter;
      expect([a.scale, a.alpha, a.down.shape[0], a.up.shape[1]]).toEqual([0.5, 1.5, rank, rank]);
      expect(a.down.dtype).toBe('F32');
    }
  });

  it('keeps strength exactly when the LoRA really has the lower rank', async () => {
    // rank-2 ΔW stored in rank-6 factors, scale 0.25: resizing to 2 must reproduce it exactly.
    const inner = randomTensor([2, 48], 5);
    const mix = await randomTensor([6, 2], 6).f32();
    const innerV = await inner.f32();
    const down = new Float32Array(6 * 48);
    for (let r = 0; r < 6; r++) for (let j = 0; j < 48; j++) down[r * 48 + j] = mix[r * 2]! * innerV[j]! + mix[r * 2 + 1]! * innerV[48 + j]!;
    const patch: Patch = {
      component: 'transformer', target: 'double_blocks.0.img_attn.proj.weight',
      adapter: { kind: 'lora', down: memoryTensor(down, [6, 48]), up: randomTensor([48, 6], 7), alpha: 1.5, scale: 0.25 },
      source: { module: 'proj', keys: [] },
    };
    const set = adapterSet([patch]);
    const { set: out, report } = await resizeLora(set, { rank: 2 });
    expect(compareDeltas(await referenceDeltas(set), await referenceDeltas(out)).maxRelError).toBeLessThan(1e-5);
    expect(report.modules[0]).toMatchObject({ fromRank: 6, toRank: 2 });
    expect(report.modules[0]!.relError).toBeLessThan(1e-4);
    expect((out.patches[0]!.adapter as LoraAdapter).alpha).toBe(0.5);
  });

  it('stays optimal on an ill-conditioned LoRA (singular values from 1 down to 1e-7)', async () => {
    // up = U·diag(σ), down = random: a spectrum spanning seven orders of magnitude.
    const r = 8;
    const u = await randomTensor([48, r], 21).f32();
    const scaled = u.map((v, i) => v * 10 ** -(i % r));
    const patch: Patch = {
      component: 'transformer', target: 'double_blocks.0.img_attn.proj.weight',
      adapter: { kind: 'lora', down: randomTensor([r, 48], 22), up: memoryTensor(scaled, [48, r]), alpha: r, scale: 1 },
      source: { module: 'steep', keys: [] },
    };
    const set = adapterSet([patch]);
    const d = (await referenceDeltas(set)).get('transformer:double_blocks.0.img_attn.proj.weight')!;
    for (const rank of [2, 4, 6]) {
      const { set: out, report } = await resizeLora(set, { rank });
      const got = (await referenceDeltas(out)).get('transformer:double_blocks.0.img_attn.proj.weight')!;
      const { approx, s } = bestRankK(d.data, 48, 48, rank);
      expect(relFrobenius(got.data, approx), `rank ${rank}`).toBeLessThan(1e-5);
      const want = Math.sqrt(s.slice(rank).reduce((x, v) => x + v * v, 0) / s.reduce((x, v) => x + v * v, 0));
      // Reported error matches the optimal one (directions under 1e-7 of σ₁ are below float32 resolution).
      expect(Math.abs(report.modules[0]!.relError - want), `rank ${rank}`).toBeLessThanOrEqual(Math.max(1e-3 * want, 1e-7));
    }
  });

  it('chooses the rank by energy per module, capped by rank', async () => {
    const set = kohyaLike(8, 8, 2);
    const energy = 0.8;
    const { report } = await resizeLora(set, { energy });
    const { report: capped } = await resizeLora(set, { energy, rank: 2 });
    for (const [i, [, d]] of [...(await referenceDeltas(set))].entries()) {
      const { s } = bestRankK(d.data, d.rows, d.cols, 0);
      const total = s.reduce((x, v) => x + v * v, 0);
      let k = 0;
      for (let kept = 0; kept < energy * total; k++) kept += s[k]! ** 2;
      expect(report.modules[i]!.toRank).toBe(k);
      expect(capped.modules[i]!.toRank).toBe(Math.min(k, 2));
    }
  });

  it('leaves modules at or below the rank, and non-LoRA patches, untouched', async () => {
    const set = kohyaLike(3, 3, 3);
    const full: Patch = { component: 'transformer', target: 'img_in.bias', adapter: { kind: 'full', diff: randomTensor([48], 4) }, source: { module: 'bias', keys: [] } };
    set.patches.push(full);
    const { set: out, report } = await resizeLora(set, { rank: 3 });
    expect(out.patches).toEqual(set.patches);
    out.patches.forEach((p, i) => expect(p).toBe(set.patches[i]));
    expect(report.unchanged).toHaveLength(5);
    expect(report.passthrough).toEqual(['bias']);
    await expect(resizeLora(set, {})).rejects.toThrow(/resize: give a rank or an energy/);
    await expect(resizeLora(set, { rank: 0 })).rejects.toThrow(/positive integer/);
  });
});
