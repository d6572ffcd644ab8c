/**
 * ai-toolkit's combined Wan 2.2 A14B files (split_multistage_loras off): both experts' LoRAs in one
 * file as `diffusion_model.transformer_1.…` (high noise) and `diffusion_model.transformer_2.…` (low
 * noise). Reading one takes the chosen expert's keys by value and names the other's; without a
 * choice it is refused naming both; the chosen expert then travels as the set's pair member, so
 * a merge of the two experts is refused and a converted file says which expert it is.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readLora } from '../src/formats/read.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { deltaError, expectedDeltas, f32, factorModules, RANK, type Module, type ModuleSpec } from './helpers/table-family.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-wan-combined-');

const W = { h: 32, f: 64 } as const;
const BLOCKS = 40; // the 14B's
const BLOCK_MODULES: ModuleSpec[] = [
  ['self_attn.q', 'attn1.to_q', W.h, W.h],
  ['self_attn.o', 'attn1.to_out.0', W.h, W.h],
  ['cross_attn.k', 'attn2.to_k', W.h, W.h],
  ['ffn.0', 'ffn.net.0.proj', W.f, W.h],
  ['ffn.2', 'ffn.net.2', W.h, W.f],
];
const spec = { blockModules: BLOCK_MODULES, outerModules: [] as ModuleSpec[], blocks: BLOCKS, blockPrefix: (i: number) => `blocks.${i}.` };
const HIGH = factorModules(spec, 1);
const LOW = factorModules(spec, 2);

/** ai-toolkit's keys of one expert: `diffusion_model.<infix>.<module>.lora_A/B.weight`. */
function entries(mods: readonly Module[], infix: string): TensorEntry[] {
  return mods.flatMap((m) => [f32(`diffusion_model.${infix}${m.name}.lora_A.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${infix}${m.name}.lora_B.weight`, [m.out, RANK], m.up)]);
}

async function combined(name: string, parts: [readonly Module[], string][]): Promise<string> {
  const path = tmp.path(`${name}.safetensors`);
  await writeSafetensors(path, parts.flatMap(([mods, infix]) => entries(mods, infix)), { metadata: { ss_base_model_version: 'wan_2.2_14b' } });
  return path;
}

describe('combined Wan 2.2 expert files (transformer_1 / transformer_2)', () => {
  it('reads the chosen expert by value, with its member, and names the other expert’s keys', async () => {
    const path = await combined('combo', [[HIGH, 'transformer_1.'], [LOW, 'transformer_2.']]);
    for (const [member, mods, other] of [['high-noise', HIGH, 'transformer_2'], ['low-noise', LOW, 'transformer_1']] as const) {
      const set = await readLora(path, { member });
      try {
        expect(set).toMatchObject({ architecture: 'wan', variant: member, unknownKeys: [] });
        expect(set.patches).toHaveLength(mods.length);
        expect(await deltaError(set, expectedDeltas(mods, 1))).toBeLessThan(1e-6);
        // source keys are the file's own names
        expect(set.patches[0]!.source.keys.every((k) => k.includes(member === 'high-noise' ? '.transformer_1.' : '.transformer_2.'))).toBe(true);
        const note = set.notes.find((n) => n.startsWith(`for the ${member} model`));
        expect(note).toContain(`${2 * mods.length} keys of the ${member === 'high-noise' ? 'low-noise' : 'high-noise'} model are left out`);
        expect(note).toContain(`diffusion_model.${other}.blocks.0.`);
      } finally {
        await set.close();
      }
    }
  });

  it('is refused without a member, naming both infixes and how to choose', async () => {
    const path = await combined('combo-unchosen', [[HIGH, 'transformer_1.'], [LOW, 'transformer_2.']]);
    await expect(readLora(path)).rejects.toMatchObject({
      code: 'COMBINED_MEMBERS',
      message: expect.stringMatching(/combo-unchosen\.safetensors: holds the LoRAs of both Wan .*transformer_1 = high-noise, transformer_2 = low-noise.*member high-noise or low-noise/),
    });
    await expect(readLora(path, { member: 'middle' })).rejects.toMatchObject({ code: 'BAD_MEMBER', message: expect.stringContaining('"middle"') });
  });

  it('a file with one expert’s infix only is that expert’s; a member asked of a plain file reads it as it is', async () => {
    const only = await combined('only-low', [[LOW, 'transformer_2.']]);
    const set = await readLora(only);
    expect(set).toMatchObject({ variant: 'low-noise', unknownKeys: [] });
    expect(await deltaError(set, expectedDeltas(LOW, 1))).toBeLessThan(1e-6);
    await set.close();
    await expect(readLora(only, { member: 'high-noise' })).rejects.toMatchObject({ code: 'BAD_MEMBER', message: expect.stringContaining('holds only transformer_2 = low-noise') });
    const plain = await combined('plain', [[HIGH, '']]);
    const p = await readLora(plain, { member: 'high-noise' });
    expect(p.variant).toBeUndefined();
    expect(await deltaError(p, expectedDeltas(HIGH, 1))).toBeLessThan(1e-6);
    await p.close();
  });

  it('the two experts of one file are not merged together; each converts to its own file that says which expert it is', async () => {
    const path = await combined('combo-ops', [[HIGH, 'transformer_1.'], [LOW, 'transformer_2.']]);
    const high = await readLora(path, { member: 'high-noise' });
    const low = await readLora(path, { member: 'low-noise' });
    await expect(mergeLoras([{ set: high, weight: 1 }, { set: low, weight: 1 }], { method: 'concat' })).rejects.toThrow(/high-noise model.*low-noise model/);
    await Promise.all([high.close(), low.close()]);
    const out = tmp.path('low.safetensors');
    execFileSync(process.execPath, ['bin/loraflow.js', 'convert', path, out, '--to', 'kohya', '--member', 'low-noise'], { encoding: 'utf8' });
    const written = await SafetensorsFile.open(out);
    expect(written.metadata?.['loraflow.variant']).toBe('low-noise');
    expect(written.tensors.some((t) => t.name.includes('transformer_'))).toBe(false);
    await written.close();
    const back = await readLora(out);
    expect(back.variant).toBe('low-noise');
    expect(await deltaError(back, expectedDeltas(LOW, 1))).toBeLessThan(1e-6);
    await back.close();
    // without --member the command fails as an input error (exit 2) naming the choice
    let status = 0;
    try {
      execFileSync(process.execPath, ['bin/loraflow.js', 'convert', path, tmp.path('none.safetensors'), '--to', 'kohya'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
      expect(String((e as { stderr: string }).stderr)).toMatch(/--member/);
    }
    expect(status).toBe(2);
  });
});
