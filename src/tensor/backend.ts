/**
 * The one place that sets up TensorFlow.js and its compute backends. Everything else imports
 * `tf` from here (re-exported below) and never imports a backend package directly, so the choice
 * of backend is made once per process (or worker thread) and stays consistent.
 *
 *   wasm        @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD): the embedded default, always works.
 *   webgpu      @tensorflow/tfjs-backend-webgpu on the `webgpu` npm package (Google's Dawn).
 *   tensorflow  @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when the user installed one;
 *               optional (its install downloads libtensorflow), never a dependency.
 *   cpu         tfjs's plain JavaScript backend: slow, kept as a reference for debugging.
 *   auto        tensorflow if importable, else webgpu on a real GPU, else wasm. Software WebGPU
 *               adapters (lavapipe, llvmpipe, SwiftShader) are slower than wasm, so auto skips them.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { LoraflowError } from '../errors.ts';

export { tf };

export const BACKEND_CHOICES = ['auto', 'wasm', 'webgpu', 'tensorflow', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** Environment variable naming the default choice (tests run the same suite per backend with it). */
export const BACKEND_ENV = 'LORAFLOW_BACKEND';

/** Package names tried for the `tensorflow` choice, GPU build first. */
const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Adapter descriptions that identify a CPU-emulated WebGPU device. */
const SOFTWARE_ADAPTER = /lavapipe|llvmpipe|swiftshader|software|microsoft basic render/i;

/** A backend that cannot be had here: the user must choose another. */
export class BackendError extends LoraflowError {
  readonly choice: string;
  constructor(choice: string, message: string, options?: { cause?: unknown }) {
    super('input', 'BACKEND', `compute backend '${choice}': ${message}`);
    if (options?.cause !== undefined) this.cause = options.cause;
    this.name = 'BackendError';
    this.choice = choice;
  }
}

export function isBackendChoice(value: string): value is BackendChoice {
  return (BACKEND_CHOICES as readonly string[]).includes(value);
}

/** The choice named by LORAFLOW_BACKEND, or 'auto' when unset; an unknown name is an error. */
export function defaultBackendChoice(): BackendChoice {
  const raw = process.env[BACKEND_ENV]?.trim().toLowerCase();
  if (!raw) return 'auto';
  if (!isBackendChoice(raw)) {
    throw new BackendError(raw, `unknown value in ${BACKEND_ENV}; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  return raw;
}

export interface GpuAdapterSummary {
  description: string;
  software: boolean;
}

let active: string | undefined;
/** Serialises backend switches: tfjs has one global engine per thread. */
let switching: Promise<unknown> = Promise.resolve();
let webgpuSetup: Promise<GpuAdapterSummary> | undefined;
let wasmRegistered: Promise<void> | undefined;
let cpuRegistered: Promise<void> | undefined;
let tensorflowRegistered: Promise<string> | undefined;

/**
 * Selects the compute backend and returns the name of the one actually in use ('wasm', 'webgpu',
 * 'tensorflow' or 'cpu'). Idempotent and safe to call concurrently. A failed explicit choice throws
 * a BackendError saying why; it never silently falls back.
 */
export async function useBackend(choice: BackendChoice = defaultBackendChoice()): Promise<string> {
  if (!isBackendChoice(choice)) {
    throw new BackendError(String(choice), `unknown backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const run = switching.then(() => select(choice));
  switching = run.catch(() => undefined);
  return run;
}

/** The backend in use, or 'none' before the first successful useBackend(). */
export function activeBackend(): string {
  return active ?? 'none';
}

/** The backend in use, choosing the default one first if nothing has chosen yet (so every run can say which ran). */
export async function ensureBackend(): Promise<string> {
  return active ?? useBackend();
}

async function select(choice: BackendChoice): Promise<string> {
  const name = choice === 'auto' ? await pickAuto() : choice;
  if (active === name && tf.getBackend() === name) return name;
  await register(name);
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (cause) {
    throw new BackendError(name, `initialisation failed: ${errorText(cause)}`, { cause });
  }
  if (!ok || tf.getBackend() !== name) {
    throw new BackendError(name, 'initialisation failed (tfjs could not start it; see the warnings above)');
  }
  active = name;
  return name;
}

/**
 * On Linux a hardware Vulkan driver needs a DRM render node or the NVIDIA device; without either,
 * WebGPU can only be a software rasteriser, so `auto` does not probe it (the probe is slow and noisy).
 */
function mayHaveGpu(): boolean {
  if (process.platform !== 'linux') return true;
  if (existsSync('/dev/nvidia0')) return true;
  try {
    return readdirSync('/dev/dri').some((name) => name.startsWith('renderD'));
  } catch {
    return false;
  }
}

async function pickAuto(): Promise<string> {
  if (await tryRegisterTensorflow()) return 'tensorflow';
  if (!mayHaveGpu()) return 'wasm';
  try {
    const adapter = await setupWebGpu();
    if (!adapter.software) return 'webgpu';
  } catch {
    // No usable GPU: wasm is the answer, not an error.
  }
  return 'wasm';
}

async function register(name: string): Promise<void> {
  switch (name) {
    case 'wasm':
      wasmRegistered ??= import('@tensorflow/tfjs-backend-wasm').then(() => undefined);
      return wasmRegistered;
    case 'cpu':
      cpuRegistered ??= import('@tensorflow/tfjs-backend-cpu').then(() => undefined);
      return cpuRegistered;
    case 'webgpu':
      await setupWebGpu();
      return;
    case 'tensorflow':
      if (!(await tryRegisterTensorflow())) {
        throw new BackendError('tensorflow', `needs ${TFJS_NODE_PACKAGES.join(' or ')} installed ` +
          `(npm install @tensorflow/tfjs-node, version ${tf.version_core} to match tfjs-core); neither is importable`);
      }
      return;
    default:
      throw new BackendError(name, 'unknown backend');
  }
}

/** Resolves to the package that registered the 'tensorflow' backend, or '' when none is installed. */
async function tryRegisterTensorflow(): Promise<string> {
  tensorflowRegistered ??= (async () => {
    for (const pkg of TFJS_NODE_PACKAGES) {
      try {
        // A variable specifier keeps TypeScript and bundlers from requiring the optional package.
        const specifier: string = pkg;
        await import(specifier);
        if (tf.findBackendFactory('tensorflow')) return pkg;
      } catch {
        // Not installed (or its native binding failed to load): try the next one.
      }
    }
    return '';
  })();
  return tensorflowRegistered;
}

/**
 * Installs Dawn as navigator.gpu (before the tfjs WebGPU backend is imported: it registers itself
 * only when navigator.gpu exists), and reports the adapter Dawn picks.
 */
export function setupWebGpu(): Promise<GpuAdapterSummary> {
  webgpuSetup ??= (async () => {
    const nav = ((globalThis as { navigator?: { gpu?: GPU } }).navigator ??= {}) as { gpu?: GPU };
    if (!nav.gpu) {
      let dawn: typeof import('webgpu');
      try {
        dawn = await import('webgpu');
      } catch (cause) {
        throw new BackendError('webgpu', `the 'webgpu' package (Dawn) failed to load: ${errorText(cause)}`, { cause });
      }
      Object.assign(globalThis, dawn.globals);
      nav.gpu = dawn.create([]);
    }
    const adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      throw new BackendError('webgpu', 'no WebGPU adapter (Dawn found no Vulkan/Metal/D3D12 device; on Linux without a GPU install Mesa >= 24 mesa-vulkan-drivers for lavapipe)');
    }
    const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
    const description = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ');
    const software = Boolean(info?.isFallbackAdapter) || info?.architecture === 'software' || SOFTWARE_ADAPTER.test(description);
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!tf.findBackendFactory('webgpu')) {
      throw new BackendError('webgpu', 'the tfjs WebGPU backend did not register (navigator.gpu was not visible to it)');
    }
    return { description, software };
  })();
  return webgpuSetup;
}

function errorText(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  if (cause && typeof cause === 'object' && 'message' in cause) return String((cause as { message: unknown }).message);
  return String(cause);
}
