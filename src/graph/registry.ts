import type { NodeDefinition } from './node.ts';

/** The node types a run may use, by type id. */
export class NodeRegistry {
  private readonly byType = new Map<string, NodeDefinition>();

  constructor(defs: Iterable<NodeDefinition> = []) {
    for (const d of defs) this.add(d);
  }

  add(def: NodeDefinition): this {
    if (this.byType.has(def.type)) throw new Error(`node type "${def.type}" is registered twice`);
    this.byType.set(def.type, def);
    return this;
  }

  get(type: string): NodeDefinition | undefined {
    return this.byType.get(type);
  }

  has(type: string): boolean {
    return this.byType.has(type);
  }

  list(): NodeDefinition[] {
    return [...this.byType.values()].sort((a, b) => a.type.localeCompare(b.type));
  }

  types(): string[] {
    return this.list().map((d) => d.type);
  }
}
