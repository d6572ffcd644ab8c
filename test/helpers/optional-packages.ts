/** Optional packages this checkout may have installed; some backend choices exist only with them. */
import { createRequire } from 'node:module';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** tfjs-node (the GPU or the CPU build): with it, 'auto' picks the tensorflow backend. */
export const TFJS_NODE = installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node');
