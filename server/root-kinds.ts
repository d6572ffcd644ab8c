import { mkdir } from 'node:fs/promises';
import type { NodeRegistry } from '../src/graph/index.ts';

/** The root kinds node file params read (`loras`, `checkpoints`) or write (`output`). */
export function rootKinds(registry: NodeRegistry, mode: 'read' | 'write'): string[] {
  const kinds = new Set<string>();
  for (const def of registry.list()) for (const p of def.pathParams) if (p.mode === mode) kinds.add(p.kind);
  return [...kinds].sort();
}

/** Creates the folder of every root runs write into, so a run's first save and the listing find it. */
export async function ensureWriteRoots(registry: NodeRegistry, roots: Readonly<Record<string, string>>): Promise<void> {
  for (const kind of rootKinds(registry, 'write')) {
    const dir = roots[kind];
    if (dir === undefined) continue;
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw new Error(`the ${kind} root ${dir} does not exist and cannot be created: ${(e as Error).message}`);
    }
  }
}
