import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeSamples } from '../src/samples/write-samples.ts';
import { ApiError } from './errors.ts';
import { rootDir, type Roots } from './paths.ts';

/** Where the examples in graphs/ look for the sample files: `samples/…` inside each input root. */
export const SAMPLES_DIR = 'samples';

export interface SamplesWritten {
  root: string;
  /** Root-relative folder ("samples"). */
  dir: string;
  files: string[];
}

/**
 * Writes loraflow's sample files (what `loraflow samples` writes) into `samples/` of each root
 * named, so the examples run whatever roots the server was started with. Each root's set is
 * written in a hidden folder beside it and renamed into place file by file: a listing never shows
 * half a file. Roots that are one folder get one copy.
 */
export async function writeSamplesInto(roots: Roots, names: readonly string[]): Promise<SamplesWritten[]> {
  const done = new Map<string, SamplesWritten>();
  const out: SamplesWritten[] = [];
  for (const name of names) {
    const dir = path.resolve(rootDir(roots, name));
    const same = done.get(dir);
    if (same) {
      out.push({ ...same, root: name });
      continue;
    }
    const written = { root: name, dir: SAMPLES_DIR, files: await writeOne(dir, name) };
    done.set(dir, written);
    out.push(written);
  }
  return out;
}

async function writeOne(dir: string, root: string): Promise<string[]> {
  const target = path.join(dir, SAMPLES_DIR);
  let tmp: string;
  try {
    await mkdir(target, { recursive: true });
    tmp = await mkdtemp(path.join(dir, '.samples-'));
  } catch (e) {
    throw new ApiError(403, 'cannot_write_root', `cannot write the samples into root "${root}" (${target}): ${(e as Error).message}`);
  }
  try {
    await writeSamples(tmp);
    const files = (await readdir(tmp)).sort();
    for (const f of files) await rename(path.join(tmp, f), path.join(target, f));
    return files.map((f) => `${SAMPLES_DIR}/${f}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
