/**
 * Staging covers folder outputs (a diffusers model folder is written as a staging folder and
 * renamed): a failed run's rollback removes the staged folder whole, and the sweep of a dead
 * process's leftovers removes its folders too — never a live process's, never a symlink.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { StagedOutputs } from '../src/graph/outputs.ts';
import { sweepStaleStaging } from '../src/safetensors/staging.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-staging-');

/** A pid that no process has any more. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

describe('staged folders', () => {
  it('a rollback removes a staged folder with its files', async () => {
    const outputs = new StagedOutputs();
    const staging = await outputs.stage(tmp.path('out', 'model'), 'save');
    await mkdir(staging);
    await writeFile(`${staging}/diffusion_pytorch_model-00001-of-00002.safetensors`, 'x');
    await outputs.rollback();
    expect(await readdir(tmp.path('out')).catch(() => [])).toEqual([]);
  });

  it('the sweep removes a dead process’s staged folder, keeps a live one’s and symlinks', async () => {
    const dir = tmp.path('sweep');
    await mkdir(dir, { recursive: true });
    const dead = `.model.${deadPid()}.0123456789ab.tmp`;
    const live = `.other.${process.pid}.0123456789ab.tmp`;
    const link = `.linked.${deadPid()}.0123456789ab.tmp`;
    await mkdir(`${dir}/${dead}`);
    await writeFile(`${dir}/${dead}/shard.safetensors`, 'x');
    await mkdir(`${dir}/${live}`);
    await mkdir(`${dir}/target`);
    await symlink(`${dir}/target`, `${dir}/${link}`);
    expect(await sweepStaleStaging(dir)).toEqual([dead]);
    expect((await readdir(dir)).sort()).toEqual([link, live, 'target'].sort());
  });
});
