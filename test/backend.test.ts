/**
 * Backend selection: explicit choices, auto, LORAFLOW_BACKEND, errors, and start-up inside a
 * worker thread (the graph engine runs whole runs in workers). WebGPU runs on Mesa lavapipe in CI;
 * if no adapter can be created these tests fail rather than skip.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BACKEND_ENV,
  BackendError,
  activeBackend,
  defaultBackendChoice,
  setupWebGpu,
  tf,
  useBackend,
  type BackendChoice,
} from '../src/tensor/backend.ts';
import { matmul } from '../src/tensor/linalg.ts';
import { TFJS_NODE } from './helpers/optional-packages.ts';

const A = Float32Array.from([1, 2, 3, 4, 5, 6]); // 2×3
const B = Float32Array.from([1, 0, 0, 1, 1, 1]); // 3×2
const AB = [4, 5, 10, 11];

describe('explicit backends', () => {
  it.each(['wasm', 'webgpu', 'cpu'] as const)('%s starts, reports itself and computes', async (choice) => {
    expect(await useBackend(choice)).toBe(choice);
    expect(activeBackend()).toBe(choice);
    expect(tf.getBackend()).toBe(choice);
    const before = tf.memory().numTensors;
    expect(Array.from(await matmul(A, [2, 3], B, [3, 2]))).toEqual(AB);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is idempotent and safe to call concurrently', async () => {
    const results = await Promise.all([useBackend('wasm'), useBackend('wasm'), useBackend('wasm')]);
    expect(results).toEqual(['wasm', 'wasm', 'wasm']);
    expect(await useBackend('wasm')).toBe('wasm');
    // Alternating requests settle in call order.
    const mixed = await Promise.all([useBackend('cpu'), useBackend('wasm')]);
    expect(mixed).toEqual(['cpu', 'wasm']);
    expect(activeBackend()).toBe('wasm');
  });

  it('webgpu comes from Dawn and names its adapter', async () => {
    const adapter = await setupWebGpu();
    expect(adapter.description.length).toBeGreaterThan(0);
    if (/llvmpipe|lavapipe|swiftshader/i.test(adapter.description)) expect(adapter.software).toBe(true);
  });

  it('tensorflow is optional: a clear error when tfjs-node is not installed', async () => {
    if (TFJS_NODE) {
      expect(await useBackend('tensorflow')).toBe('tensorflow');
    } else {
      const failure = useBackend('tensorflow');
      await expect(failure).rejects.toBeInstanceOf(BackendError);
      await expect(failure).rejects.toThrow(/compute backend 'tensorflow': needs @tensorflow\/tfjs-node-gpu or @tensorflow\/tfjs-node installed/);
    }
  });

  it('rejects an unknown name without changing the active backend', async () => {
    await useBackend('wasm');
    await expect(useBackend('cuda' as BackendChoice)).rejects.toThrow(/compute backend 'cuda': unknown backend; expected one of auto, wasm, webgpu, tensorflow, cpu/);
    expect(activeBackend()).toBe('wasm');
  });
});

describe('auto', () => {
  it('picks tensorflow if importable, else webgpu on a hardware adapter, else wasm', async () => {
    const adapter = await setupWebGpu();
    const expected = TFJS_NODE ? 'tensorflow' : adapter.software ? 'wasm' : 'webgpu';
    expect(await useBackend('auto')).toBe(expected);
    expect(activeBackend()).toBe(expected);
  });
});

describe(`${BACKEND_ENV}`, () => {
  const saved = process.env[BACKEND_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[BACKEND_ENV];
    else process.env[BACKEND_ENV] = saved;
  });

  it('sets the default choice, case-insensitively', async () => {
    delete process.env[BACKEND_ENV];
    expect(defaultBackendChoice()).toBe('auto');
    process.env[BACKEND_ENV] = ' CPU ';
    expect(defaultBackendChoice()).toBe('cpu');
    expect(await useBackend()).toBe('cpu');
    process.env[BACKEND_ENV] = 'wasm';
    expect(await useBackend()).toBe('wasm');
  });

  it('rejects an unknown value, naming the variable', () => {
    process.env[BACKEND_ENV] = 'tpu';
    expect(() => defaultBackendChoice()).toThrow(/compute backend 'tpu': unknown value in LORAFLOW_BACKEND/);
  });
});

describe.each(['wasm', 'webgpu'] as const)('inside a worker thread (%s)', (choice) => {
  it('initialises and computes', async () => {
    const worker = new Worker(new URL('./backend.worker-boot.mjs', import.meta.url), { workerData: { choice } });
    try {
      const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`worker exited with code ${code} before replying`)));
      });
      expect(reply).toEqual({ ok: true, backend: choice, active: choice, product: AB });
    } finally {
      await worker.terminate();
    }
  });
});
