/**
 * A machine where WebGPU yields no adapter (no Vulkan driver, or a GPU-less container): an explicit
 * 'webgpu' choice fails with a message that says what to install, and 'auto' falls back to wasm.
 * The fake navigator.gpu is installed before backend.ts first touches WebGPU (this file runs in its
 * own process).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const fake = { requestAdapter: async () => null };
(globalThis as { navigator?: unknown }).navigator = { gpu: fake };
const { BackendError, activeBackend, useBackend } = await import('../src/tensor/backend.ts');

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

describe('without a WebGPU adapter', () => {
  it('an explicit webgpu choice is a clear error', async () => {
    const failure = useBackend('webgpu');
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure).rejects.toThrow(/compute backend 'webgpu': no WebGPU adapter .*mesa-vulkan-drivers/);
    expect(activeBackend()).toBe('none');
  });

  it('auto falls back to wasm (or tensorflow when installed)', async () => {
    const tfjsNode = installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node');
    expect(await useBackend('auto')).toBe(tfjsNode ? 'tensorflow' : 'wasm');
  });
});
