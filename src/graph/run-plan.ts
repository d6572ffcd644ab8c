/**
 * Run planning, after validation: each node's cache key (type, version, params, its inputs' keys,
 * the fingerprints of the files it reads), which nodes are volatile (not cacheable, or fed by one
 * that is), the cache hits, and what actually has to run for the targets: a node runs when a target
 * or a consumer that runs needs it and it is not cached.
 */
import { cacheKey, fingerprintFile, type CacheEntry, type FileFingerprint, type RunCache } from './cache.ts';
import type { PlanInfo } from './events.ts';
import type { Plan } from './validate.ts';

export type CacheHit = CacheEntry;

export interface RunPlan {
  keys: Map<string, string>;
  volatile: Set<string>;
  hits: Map<string, CacheHit>;
  /** Nodes to run, in order. */
  toRun: string[];
  info: PlanInfo;
}

async function cacheKeys(plan: Plan, runId: string): Promise<{ keys: Map<string, string>; volatile: Set<string> }> {
  const keys = new Map<string, string>();
  const volatile = new Set<string>();
  for (const id of plan.order) {
    const node = plan.nodes.get(id)!;
    const reads: (FileFingerprint | { path: string; missing: true })[] = [];
    for (const p of node.paths) if (p.mode === 'read') reads.push((await fingerprintFile(p.resolved)) ?? { path: p.resolved, missing: true });
    const links = Object.values(node.inputs).flat();
    if (!node.def.cacheable || links.some((l) => volatile.has(l.nodeId))) volatile.add(id);
    keys.set(
      id,
      cacheKey({
        type: node.def.type,
        v: node.def.v,
        params: node.params,
        inputs: Object.fromEntries(Object.entries(node.inputs).map(([name, ls]) => [name, ls.map((l) => `${keys.get(l.nodeId)}:${l.output}`)])),
        paths: node.paths.map((p) => ({ name: p.name, resolved: p.resolved })),
        reads,
        nonce: volatile.has(id) ? runId : undefined,
      }),
    );
  }
  return { keys, volatile };
}

/** The nodes the targets need, walking back from them: a cached consumer needs nothing upstream. */
function neededNodes(plan: Plan, hits: ReadonlyMap<string, CacheHit>): Set<string> {
  const consumers = new Map<string, string[]>();
  for (const id of plan.order) for (const l of Object.values(plan.nodes.get(id)!.inputs).flat()) consumers.set(l.nodeId, [...(consumers.get(l.nodeId) ?? []), id]);
  const needed = new Set<string>();
  for (const id of [...plan.order].reverse()) {
    if (plan.targets.includes(id) || (consumers.get(id) ?? []).some((c) => needed.has(c) && !hits.has(c))) needed.add(id);
  }
  return needed;
}

export async function planRun(plan: Plan, cache: RunCache, runId: string): Promise<RunPlan> {
  const { keys, volatile } = await cacheKeys(plan, runId);
  const hits = new Map<string, CacheHit>();
  for (const id of plan.order) {
    if (volatile.has(id)) continue;
    const hit = await cache.lookup(keys.get(id)!);
    if (hit) hits.set(id, hit);
  }
  const needed = neededNodes(plan, hits);
  const toRun = plan.order.filter((id) => needed.has(id) && !hits.has(id));
  const info: PlanInfo = {
    order: plan.order,
    targets: plan.targets,
    cached: plan.order.filter((id) => hits.has(id)),
    run: toRun,
    skipped: plan.order.filter((id) => !needed.has(id) && !hits.has(id)),
    writes: toRun.flatMap((id) => plan.nodes.get(id)!.paths.filter((p) => p.mode === 'write').map((p) => p.resolved)),
    migrations: plan.migrations,
  };
  return { keys, volatile, hits, toRun, info };
}
