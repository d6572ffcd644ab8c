/**
 * Graph order: cycles (reported with their members), pruning to what the targets need, and a
 * deterministic topological order (Kahn's algorithm, ready nodes taken in id order).
 */

/** `edges.get(id)` = the nodes `id` reads from. */
export type Dependencies = ReadonlyMap<string, readonly string[]>;

/** Strongly connected components with more than one node, or a node linked to itself (Tarjan). */
export function findCycles(ids: readonly string[], deps: Dependencies): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of deps.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (deps.get(v) ?? []).includes(v)) cycles.push(comp.sort());
    }
  };
  for (const id of [...ids].sort()) if (!idx.has(id)) visit(id);
  return cycles;
}

/** The targets and everything they depend on. */
export function ancestors(targets: readonly string[], deps: Dependencies): Set<string> {
  const seen = new Set<string>();
  const todo = [...targets];
  while (todo.length > 0) {
    const id = todo.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const d of deps.get(id) ?? []) todo.push(d);
  }
  return seen;
}

/** Dependencies before dependents; among ready nodes, ids in sorted order. Requires an acyclic graph. */
export function topologicalOrder(ids: Iterable<string>, deps: Dependencies): string[] {
  const members = new Set(ids);
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const id of members) {
    const ds = [...new Set(deps.get(id) ?? [])].filter((d) => members.has(d));
    waiting.set(id, ds.length);
    for (const d of ds) dependents.set(d, [...(dependents.get(d) ?? []), id]);
  }
  const ready = [...members].filter((id) => waiting.get(id) === 0).sort();
  const order: string[] = [];
  while (ready.length > 0) {
    const id = ready.shift()!;
    order.push(id);
    for (const next of dependents.get(id) ?? []) {
      const left = waiting.get(next)! - 1;
      waiting.set(next, left);
      if (left === 0) {
        ready.push(next);
        ready.sort();
      }
    }
  }
  if (order.length !== members.size) throw new Error(`graph has a cycle among ${[...members].filter((m) => !order.includes(m)).join(', ')}`);
  return order;
}
