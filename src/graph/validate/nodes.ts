/** The nodes step: each node's shape, its type in the registry, and its version (migrated to the current one). */
import { migrateNodeDoc } from '../migrate.ts';
import { NODE_ID_PATTERN, RecipeNodeSchema } from '../recipe.ts';
import { isPlainObject, issueMessage, type Entry, type Validation } from './context.ts';

export function checkNodes(va: Validation): void {
  for (const [id, raw] of Object.entries(va.rawNodes)) {
    if (!NODE_ID_PATTERN.test(id)) {
      va.problems.push({ code: 'bad_node', nodeId: id, message: 'node ids are identifiers: letters, digits, _ and - (no dots; links use "<id>.<output>")' });
      continue;
    }
    const parsed = RecipeNodeSchema.safeParse(raw);
    if (!parsed.success) {
      const type = isPlainObject(raw) && typeof raw.type === 'string' ? raw.type : undefined;
      for (const issue of parsed.error.issues) {
        const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
        va.problems.push({ code: 'bad_node', nodeId: id, nodeType: type, path: ['nodes', id, ...(issue.path as (string | number)[])], message: `${where}${issueMessage(issue)}` });
      }
      continue;
    }
    const node = parsed.data;
    const def = va.registry.get(node.type);
    const entry: Entry = { id, type: node.type, title: node.title, v: node.v ?? def?.v ?? '', params: node.params ?? {}, in: node.in ?? {} };
    va.entries.set(id, entry);
    if (!def) {
      va.problems.push({ code: 'unknown_node_type', nodeId: id, nodeType: node.type, message: `unknown node type "${node.type}" (this loraflow has: ${va.registry.types().join(', ')})` });
      continue;
    }
    const m = migrateNodeDoc(def, { v: entry.v, params: entry.params, in: entry.in });
    if (!m.ok) {
      va.problems.push({ code: 'node_version', nodeId: id, nodeType: node.type, message: m.message });
      continue;
    }
    va.migrations.push(...m.applied.map((a) => `node "${id}": ${a}`));
    Object.assign(entry, { def, v: m.value.v, params: m.value.params, in: m.value.in });
  }
}
