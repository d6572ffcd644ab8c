/** Key lists as detection sees them: constructed family fixture files, FLUX.1 sample layouts and real FLUX.1 fixtures. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { detectFormat } from '../../src/formats/detect.ts';
import { readLora } from '../../src/formats/read.ts';
import { FIXTURE_NAMES, fixtureKeyShapes, sampleKeyShapes, writeSampleLora, type SampleFormat } from '../../src/samples/lora-fixtures.ts';

export interface KeyShape {
  name: string;
  shape: number[];
}

/** A test/fixtures/families key list: one `name [shape]` per line, `#` comments and blank lines skipped. */
export function readKeyList(path: string): KeyShape[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const [name, shape] = l.trim().split(/\s+/) as [string, string];
      return { name, shape: JSON.parse(shape) as number[] };
    });
}

const FLUX_SAMPLE_FORMATS: SampleFormat[] = ['aitoolkit', 'diffusers', 'kohya', 'comfyui', 'onetrainer', 'xlabs'];

/**
 * A new family's detection must not claim FLUX.1 files: every sample layout and every real FLUX.1
 * fixture key list is still detected as FLUX.1, and a kohya sample written to `dir` reads back as
 * FLUX.1 with no unknown key.
 */
export async function expectFluxFilesStayFlux(dir: string): Promise<void> {
  for (const format of FLUX_SAMPLE_FORMATS) {
    const tensors = Object.entries(sampleKeyShapes({ format })).map(([name, shape]) => ({ name, shape }));
    expect(detectFormat(tensors).architecture, format).toBe('flux');
  }
  for (const name of FIXTURE_NAMES) {
    const tensors = Object.entries(fixtureKeyShapes(name)).map(([n, shape]) => ({ name: n, shape }));
    expect(detectFormat(tensors).architecture, name).toBe('flux');
  }
  const path = join(dir, 'flux1-kohya.safetensors');
  await writeSampleLora(path, { format: 'kohya' });
  const set = await readLora(path);
  expect(set.architecture).toBe('flux');
  expect(set.unknownKeys).toEqual([]);
  await set.close();
}
