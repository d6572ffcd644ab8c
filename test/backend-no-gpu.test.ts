/**
 * A machine where WebGPU yields no adapter (no Vulkan driver, or a GPU-less container): an explicit
 * 'webgpu' choice fails with a message that says what to install, and 'auto' falls back to wasm.
 * The fake navigator.gpu is installed before backend.ts first touches WebGPU (this file runs in its
 * own process).
 */
import { describe, expect, it } from 'vitest';
import { TFJS_NODE } from './helpers/optional-packages.ts';

const fake = { requestAdapter: async () => null };
(globalThis as { navigator?: unknown }).navigator = { gpu: fake };
const { BackendError, activeBackend, useBackend } = await import('../src/tensor/backend.ts');

describe('without a WebGPU adapter', () => {
  it('an explicit webgpu choice is a clear error', async () => {
    const failure = useBackend('webgpu');
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure).rejects.toThrow(/compute backend 'webgpu': no WebGPU adapter .*mesa-vulkan-drivers/);
    expect(activeBackend()).toBe('none');
  });

  it('auto falls back to wasm (or tensorflow when installed)', async () => {
    expect(await useBackend('auto')).toBe(TFJS_NODE ? 'tensorflow' : 'wasm');
  });
});
