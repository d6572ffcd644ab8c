/**
 * One list of compute backends (src/tensor/backend.ts BACKEND_CHOICES): the CLI's --backend check
 * and the node package's setup take it from there, so they accept and name the same ones.
 */
import { describe, expect, it } from 'vitest';
import { runFlags } from '../src/cli/recipes/execute.ts';
import { BACKEND_CHOICES } from '../src/tensor/backend.ts';
import { setup } from '../nodes/index.ts';

describe('backend choices', () => {
  it('are auto, wasm, webgpu, tensorflow and cpu', () => {
    expect(BACKEND_CHOICES).toEqual(['auto', 'wasm', 'webgpu', 'tensorflow', 'cpu']);
  });

  it('the CLI accepts each and names them all when refusing another', () => {
    for (const b of BACKEND_CHOICES) expect(runFlags({ backend: b }).backend).toBe(b);
    expect(() => runFlags({ backend: 'cuda' })).toThrow('--backend must be one of auto, wasm, webgpu, tensorflow, cpu, got "cuda"');
  });

  it('the node package refuses an unknown one with the same list', async () => {
    await expect(setup({ backend: 'cuda' })).rejects.toThrow('unknown backend "cuda" (auto, wasm, webgpu, tensorflow, cpu)');
  });
});
