/**
 * The sample files `loraflow samples` writes, made once for a test file in its temp dir, with the
 * two FLUX sample LoRAs (ai-toolkit and kohya layouts) open for its tests and closed after them.
 */
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { writeSamples } from '../../src/samples/write-samples.ts';
import { readLora, type LoraHandle } from '../../src/formats/read.ts';
import type { TempDir } from './temp-dir.ts';

export interface SampleLoras {
  /** The samples folder. */
  readonly dir: string;
  readonly aitoolkit: LoraHandle;
  readonly kohya: LoraHandle;
}

export function useSampleLoras(tmp: TempDir): SampleLoras {
  let aitoolkit: LoraHandle | undefined;
  let kohya: LoraHandle | undefined;
  const dir = () => tmp.path('samples');
  beforeAll(async () => {
    await writeSamples(dir());
    aitoolkit = await readLora(path.join(dir(), 'flux-aitoolkit-lora.safetensors'));
    kohya = await readLora(path.join(dir(), 'flux-kohya-lora.safetensors'));
  }, 120_000);
  afterAll(async () => {
    await aitoolkit?.close();
    await kohya?.close();
  });
  const opened = (h: LoraHandle | undefined, what: string): LoraHandle => {
    if (!h) throw new Error(`sample LoRA ${what} used before its beforeAll hook ran`);
    return h;
  };
  return {
    get dir() {
      return dir();
    },
    get aitoolkit() {
      return opened(aitoolkit, 'flux-aitoolkit-lora.safetensors');
    },
    get kohya() {
      return opened(kohya, 'flux-kohya-lora.safetensors');
    },
  };
}
